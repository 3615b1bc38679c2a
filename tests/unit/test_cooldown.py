"""The cooldown lets through what it must: another camera, another person, sightings further
apart than the cooldown, and a sighting after an alert that was never sent. Judged by the
alert delivery on a real ledger, beside the repeat it does suppress (so the cooldown was on)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from edged.alerts.analyzer import build_alerts
from edged.alerts.base import DeliveryError
from edged.alerts.delivery import AlertDelivery
from edged.ledger import outbox
from edged.ledger.outbox import Alert
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.results.matcher import Match
from tests.support.alerts import Recorder, analyzed, policy, result
from tests.support.waiting import eventually

COOLDOWN_S = 600.0  # ten minutes


class Refusing(Recorder):
    """Records what it delivers; refuses the first alert of each camera in `refuse_first` (for
    good: with retry_max_age 0 the alert fails at once, never sent)."""

    def __init__(self, expected: int, refuse_first: set[str]) -> None:
        super().__init__(expected)
        self.refuse_first = refuse_first

    async def deliver(self, alert: Alert) -> None:
        if alert.camera in self.refuse_first:
            self.refuse_first.discard(alert.camera)
            raise DeliveryError("the receiver refused it")
        await super().deliver(alert)


async def test_the_cooldown_lets_through_what_is_not_a_repeat(tmp_path: Path) -> None:
    ledger = await asyncio.to_thread(Ledger, tmp_path)
    db = AsyncLedger(ledger)
    p = policy()
    # (person, camera, minute): the same offset (12 s) into each clip is the sighting.
    sightings = [
        ("Alice", "porch", 0),  # sent
        ("Alice", "porch", 5),  # suppressed: Alice on the porch 5 min after one sent
        ("Alice", "yard", 6),  # sent: another camera
        ("Bob", "porch", 7),  # sent: another person
        ("Alice", "porch", 11),  # sent: 11 min after the last one sent (the 5 was not)
        ("Alice", "porch", 22),  # sent: 11 min after that
        ("Alice", "garage", 30),  # never sent: the receiver refuses it, it fails
        ("Alice", "garage", 32),  # sent: the one before it was never delivered
    ]

    def enqueue() -> None:
        for person, camera, minute in sightings:
            text = result(person)
            clip = analyzed(ledger, text, camera=camera, start=f"2026-01-09 12:{minute:02d}")
            match = Match(person, True, 0.9, (12.0,), "json", "")
            alerts = build_alerts(clip, text, [match], p, "install", 0.0)
            ledger.outbox.add(alerts, 0.0)

    await asyncio.to_thread(enqueue)
    sink = Refusing(expected=6, refuse_first={"garage"})
    delivery = AlertDelivery(
        db, [sink], cooldown_s=COOLDOWN_S, retry_max_age_s=0.0, backoff_base_s=0.01
    )

    task = asyncio.create_task(delivery.run())
    try:
        await asyncio.wait_for(sink.sent.wait(), 10)

        async def settled() -> bool:
            rows = await db.call(ledger.db.rows, "SELECT 1 FROM alerts WHERE state='pending'")
            return not rows

        await eventually(settled, timeout_s=10, what="every alert sent, suppressed or failed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    rows = await db.call(
        ledger.db.rows, "SELECT person, camera, state, last_error FROM alerts ORDER BY event_at"
    )
    assert [(r["person"], r["camera"], r["state"]) for r in rows] == [
        ("Alice", "porch", "sent"),
        ("Alice", "porch", "suppressed"),
        ("Alice", "yard", "sent"),
        ("Bob", "porch", "sent"),
        ("Alice", "porch", "sent"),
        ("Alice", "porch", "sent"),
        ("Alice", "garage", "failed"),
        ("Alice", "garage", "sent"),
    ]
    assert rows[1]["last_error"] == "cooldown"
    assert [(a.person, a.camera) for a in sink.alerts] == [
        ("Alice", "porch"),
        ("Alice", "yard"),
        ("Bob", "porch"),
        ("Alice", "porch"),
        ("Alice", "porch"),
        ("Alice", "garage"),
    ]
    await db.aclose()


def test_the_cooldown_window_is_counted_from_sent_alerts_by_sighting_time(tmp_path: Path):
    """outbox.in_cooldown directly: only a sent alert of the same (sink, camera, person)
    within the cooldown, either side of the sighting, holds one back."""
    ledger = Ledger(tmp_path)
    p = policy(sink_names=("log", "webhook"))
    clip = analyzed(ledger, result("Alice"), camera="porch", start="2026-01-09 12:00")
    match = Match("Alice", True, 0.9, (12.0,), "json", "")
    ledger.outbox.add(build_alerts(clip, result("Alice"), [match], p, "install", 0.0), 0.0)
    log_alert, hook_alert = (ledger.outbox.next_due(sink, 1.0) for sink in ("log", "webhook"))
    assert log_alert is not None and hook_alert is not None

    def later(alert: Alert, seconds: float, **changes: str) -> Alert:
        """Another sighting: its own id, `seconds` after this one."""
        moved = alert.event_at + seconds
        return replace(alert, alert_id=f"{alert.alert_id}+{seconds}", event_at=moved, **changes)

    # Pending is not sent: nothing holds a later sighting back yet.
    assert not ledger.outbox.in_cooldown(later(log_alert, 60), COOLDOWN_S)
    ledger.outbox.mark(log_alert, outbox.SENT, 1.0)
    assert ledger.outbox.in_cooldown(later(log_alert, 60), COOLDOWN_S)
    assert ledger.outbox.in_cooldown(later(log_alert, -60), COOLDOWN_S)  # an earlier sighting
    assert not ledger.outbox.in_cooldown(later(log_alert, COOLDOWN_S + 1), COOLDOWN_S)
    assert not ledger.outbox.in_cooldown(later(log_alert, 60, camera="yard"), COOLDOWN_S)
    assert not ledger.outbox.in_cooldown(later(log_alert, 60, person="Bob"), COOLDOWN_S)
    assert not ledger.outbox.in_cooldown(later(hook_alert, 60), COOLDOWN_S)  # another sink
    assert not ledger.outbox.in_cooldown(later(log_alert, 60), 0.0)  # cooldown off
    ledger.close()
