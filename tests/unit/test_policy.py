"""The person policy: never/always, camera filters, quiet hours (across midnight, by weekday,
in a time zone), alerts for unknown people, and max_per_hour at delivery, on a real ledger."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from edged.alerts.analyzer import build_alerts, finish_clip, plan_alerts
from edged.alerts.delivery import AlertDelivery
from edged.alerts.policy import PersonRule, over_hourly_limit, quiet_window
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.results.matcher import Match, build_prompts, parse_unknown
from tests.support.alerts import Recorder, analyzed, at, policy, result
from tests.support.waiting import eventually

# ---- persons: never/always and camera filters -----------------------------------------------


def test_always_is_the_default_and_never_silences_a_person() -> None:
    rules = {"Bob": PersonRule(alert=False)}
    p = policy(persons=rules)
    assert p.skip_reason("porch", "Alice", 0.0) is None
    assert p.skip_reason("porch", "Bob", 0.0) == "alert: never"


def test_camera_filters_only_and_except() -> None:
    rules = {
        "Alice": PersonRule(only=frozenset({"porch", "gate"})),
        "Bob": PersonRule(excluded=frozenset({"yard"})),
    }
    p = policy(persons=rules)
    assert p.skip_reason("porch", "Alice", 0.0) is None
    assert p.skip_reason("yard", "Alice", 0.0) == "not an alerting camera for Alice"
    assert p.skip_reason("porch", "Bob", 0.0) is None
    assert p.skip_reason("yard", "Bob", 0.0) == "not an alerting camera for Bob"
    assert p.skip_reason("yard", "unknown", 0.0) is None  # no rule: every camera


# ---- quiet hours ---------------------------------------------------------------------------


def test_quiet_hours_across_midnight() -> None:
    night = quiet_window("22:00-06:00", timezone="Europe/Berlin")
    assert night.covers("yard", at("2026-01-09 22:00"))
    assert night.covers("yard", at("2026-01-09 23:59"))
    assert night.covers("yard", at("2026-01-10 00:00"))
    assert night.covers("yard", at("2026-01-10 05:59"))
    assert not night.covers("yard", at("2026-01-10 06:00"))  # the end is not included
    assert not night.covers("yard", at("2026-01-10 12:00"))
    assert not night.covers("yard", at("2026-01-09 21:59"))


def test_quiet_hours_days_name_the_day_the_window_starts() -> None:
    friday_night = quiet_window("22:00-06:00", days=["fri"], timezone="Europe/Berlin")
    assert friday_night.covers("yard", at("2026-01-09 23:00"))  # Friday
    assert friday_night.covers("yard", at("2026-01-10 03:00"))  # Saturday, still Friday's night
    assert not friday_night.covers("yard", at("2026-01-10 23:00"))  # Saturday night
    assert not friday_night.covers("yard", at("2026-01-09 03:00"))  # Thursday's night
    daytime = quiet_window("08:00-18:00", days=["sat", "sun"], timezone="Europe/Berlin")
    assert daytime.covers("yard", at("2026-01-10 12:00"))
    assert not daytime.covers("yard", at("2026-01-09 12:00"))


def test_quiet_hours_are_read_in_their_time_zone_and_per_camera() -> None:
    window = quiet_window("22:00-06:00", cameras=["yard"], timezone="America/New_York")
    new_york = ZoneInfo("America/New_York")
    assert window.covers("yard", at("2026-07-01 23:30", new_york))
    # 23:30 in Berlin is 17:30 in New York: not quiet there.
    assert not window.covers("yard", at("2026-07-01 23:30"))
    assert not window.covers("porch", at("2026-07-01 23:30", new_york))
    whole_day = quiet_window("00:00-24:00")
    assert whole_day.covers("any", at("2026-07-01 12:00")) and whole_day.covers("x", 0.0)


def test_quiet_hours_in_the_policy_name_the_window() -> None:
    p = policy(quiet_hours=(quiet_window("22:00-06:00", cameras=["yard"], timezone="UTC"),))
    night = at("2026-01-10 02:00", ZoneInfo("UTC"))
    assert p.skip_reason("yard", "Alice", night) == "quiet hours 22:00-06:00"
    assert p.skip_reason("porch", "Alice", night) is None


# ---- the hourly limit ----------------------------------------------------------------------


def test_over_hourly_limit_counts_every_hour_that_contains_the_sighting() -> None:
    assert not over_hourly_limit([], 5000.0, 1)
    assert over_hourly_limit([4000.0], 5000.0, 1)
    assert not over_hourly_limit([1000.0], 5000.0, 1)  # more than an hour before
    assert not over_hourly_limit([0.0, 1800.0], 3700.0, 2)  # (100, 3700] holds 1800 and this
    assert over_hourly_limit([0.0, 1800.0], 3000.0, 2)
    # A retried alert delivered after later ones: the hour after it counts as well.
    assert over_hourly_limit([5000.0, 6000.0], 4000.0, 2)
    assert not over_hourly_limit([5000.0, 8000.0], 4000.0, 2)


# ---- from a result to outbox rows, on a real ledger -----------------------------------------


def test_the_plan_splits_matches_by_the_policy(ledger: Ledger) -> None:
    p = policy(
        persons={"Bob": PersonRule(alert=False)},
        quiet_hours=(quiet_window("22:00-06:00", cameras=["yard"], timezone="Europe/Berlin"),),
    )
    clip = analyzed(ledger, result("Alice", "Bob"), camera="yard", start="2026-01-09 12:00")
    plan = plan_alerts(ledger, clip, p)
    assert [m.person for m in plan.raised] == ["Alice"]
    assert [(m.person, reason) for m, reason in plan.skipped] == [("Bob", "alert: never")]

    # At night on the yard Alice is quiet too; the sighting time decides (start + 12 s).
    night = analyzed(ledger, result("Alice"), camera="yard", start="2026-01-09 21:59:50")
    plan = plan_alerts(ledger, night, p)
    assert plan.raised == () and plan.skipped[0][1] == "quiet hours 22:00-06:00"
    finish_clip(ledger, night, p, 0.0, plan)
    assert ledger.clips.get(night.id) is not None and ledger.db.rows("SELECT * FROM alerts") == []


def test_unknown_people_raise_an_unknown_alert_when_asked_for(ledger: Ledger) -> None:
    text = result(unknown=2, unknown_at=[40.5, 41])
    clip = analyzed(ledger, text)
    assert plan_alerts(ledger, clip, policy()).raised == ()
    plan = plan_alerts(ledger, clip, policy(unknown=True))
    (match,) = plan.raised
    assert (match.person, match.present, match.timestamps) == ("unknown", True, (40.5, 41.0))
    finish_clip(ledger, clip, policy(unknown=True), 1000.0, plan)
    (row,) = ledger.db.rows("SELECT person, payload, state FROM alerts")
    payload = json.loads(row["payload"])
    assert (row["person"], row["state"], payload["person"]) == ("unknown", "pending", "unknown")
    assert payload["moment_s"] == 40.5


def test_unknown_people_parsing() -> None:
    assert parse_unknown(result(unknown=0)) is None
    assert parse_unknown(result()) is None  # the model gave no count
    assert parse_unknown("Two strangers walk by.") is None  # prose is not enough
    found = parse_unknown(result(unknown=1), "stranger")
    assert found is not None and found.person == "stranger" and found.timestamps == ()
    prompt, _ = build_prompts("Describe.", "Sys.", ["Alice"], ask_unknown=True)
    assert '"unknown_timestamps": []' in prompt


def test_unknown_alerts_follow_quiet_hours_too(ledger: Ledger) -> None:
    p = policy(unknown=True, quiet_hours=(quiet_window("00:00-24:00", cameras=["porch"]),))
    plan = plan_alerts(ledger, analyzed(ledger, result(unknown=1)), p)
    assert plan.raised == () and plan.skipped[0][0].person == "unknown"


# ---- max_per_hour at delivery ---------------------------------------------------------------


async def test_max_per_hour_suppresses_alerts_beyond_the_limit(tmp_path: Path) -> None:
    ledger = await asyncio.to_thread(Ledger, tmp_path)
    db = AsyncLedger(ledger)
    p = policy()
    # Alice on the porch four times in 40 minutes, Bob once, all queued at once.
    sightings = [("Alice", "porch", minute) for minute in (0, 10, 20, 40)] + [("Bob", "porch", 5)]

    def enqueue() -> None:
        for person, camera, minute in sightings:
            start = f"2026-01-09 12:{minute:02d}"
            text = result(person)
            clip = analyzed(ledger, text, camera=camera, start=start)
            match = Match(person, True, 0.9, (0.0,), "json", "")
            alerts = build_alerts(clip, text, [match], p, "install", 0.0)
            ledger.outbox.add(alerts, 0.0)

    await asyncio.to_thread(enqueue)
    sink = Recorder(expected=3)
    delivery = AlertDelivery(db, [sink], cooldown_s=0.0, retry_max_age_s=3600.0, max_per_hour=2)
    task = asyncio.create_task(delivery.run())
    try:
        await asyncio.wait_for(sink.sent.wait(), 10)

        async def settled() -> bool:
            rows = await db.call(ledger.db.rows, "SELECT state FROM alerts WHERE state='pending'")
            return not rows

        await eventually(settled, timeout_s=10, what="every alert sent or suppressed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    rows = await db.call(
        ledger.db.rows, "SELECT person, event_at, state, last_error FROM alerts ORDER BY event_at"
    )
    states = [(r["person"], r["state"], r["last_error"]) for r in rows]
    assert states == [
        ("Alice", "sent", None),
        ("Bob", "sent", None),
        ("Alice", "sent", None),
        ("Alice", "suppressed", "max_per_hour"),
        ("Alice", "suppressed", "max_per_hour"),
    ]
    assert [a.person for a in sink.alerts] == ["Alice", "Bob", "Alice"]
    await db.aclose()
