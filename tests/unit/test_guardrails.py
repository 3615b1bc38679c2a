"""Upload schedules and daily budgets, on a real ledger."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edged.clip import ClipState, NewClip
from edged.ledger.store import Ledger
from edged.schedule import Budget, DayUsage, HourRange, in_schedule
from edged.upload.guardrails import CameraRules, Guardrails, UsageSince

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("08:00-18:00", ["08:00", "12:00", "17:59"], ["18:00", "07:59", "23:00"]),
        ("22:00-06:00", ["22:00", "23:59", "00:00", "05:59"], ["06:00", "12:00", "21:59"]),
        ("18:00-24:00", ["18:00", "23:59"], ["00:00", "17:59"]),
        ("00:00-00:00", ["00:00", "12:00", "23:59"], []),
    ],
)
def test_hour_ranges_including_across_midnight(text, inside, outside) -> None:
    hours = HourRange.parse(text)
    for value in inside:
        assert hours.contains(time.fromisoformat(value)), value
    for value in outside:
        assert not hours.contains(time.fromisoformat(value)), value


@pytest.mark.parametrize("bad", ["8-18", "25:00-01:00", "10:60-11:00", "night"])
def test_bad_ranges_say_what_is_expected(bad: str) -> None:
    with pytest.raises(ValueError, match=r"such as 22:00-06:00|00:00 to 24:00"):
        HourRange.parse(bad)


def test_schedule_is_read_in_the_camera_zone() -> None:
    night = (HourRange.parse("22:00-06:00"),)
    # 21:30 UTC is 23:30 in Berlin in summer: inside the night range there, not in UTC.
    moment = datetime(2024, 7, 1, 21, 30, tzinfo=UTC)
    assert in_schedule(moment, night, BERLIN)
    assert not in_schedule(moment, night, UTC)
    assert in_schedule(moment, (), UTC), "no schedule: always"


def reads(ledger: Ledger) -> UsageSince:
    """Today's usage read straight from a ledger of the test's own."""

    async def usage_since(since: float, camera: str | None) -> DayUsage:
        return ledger.uploads.usage_since(since, camera)

    return usage_since


def upload_one(ledger: Ledger, camera: str, size: int, duration_s: float, now: float) -> None:
    clip, _ = ledger.clips.add(NewClip(camera, Path("x.mp4"), size, None, duration_s))
    taken = ledger.uploads.take_for_upload(clip.id)
    assert taken is not None
    ledger.uploads.mark_submitted(clip.id, "t")


async def test_budgets_per_camera_and_for_the_box(ledger: Ledger) -> None:
    now = datetime.now(UTC).timestamp()
    rails = Guardrails(
        {"yard": CameraRules(budget=Budget(clips=2)), "door": CameraRules()},
        total=Budget(minutes=3),
    )
    upload_one(ledger, "yard", 10, 60, now)
    upload_one(ledger, "yard", 10, 60, now)
    third, _ = ledger.clips.add(NewClip("yard", Path("y.mp4"), 10, None, 60))
    verdict = await rails.check(third, now, reads(ledger))
    assert verdict is not None and verdict[0] is ClipState.SKIPPED_BUDGET
    assert "camera yard: 2 clips a day" in verdict[1]
    short, _ = ledger.clips.add(NewClip("door", Path("d.mp4"), 10, None, 59))
    long, _ = ledger.clips.add(NewClip("door", Path("e.mp4"), 10, None, 61))
    assert await rails.check(short, now, reads(ledger)) is None
    verdict = await rails.check(long, now, reads(ledger))
    assert verdict is not None and "the whole box: 3 minutes" in verdict[1]
    # Yesterday's uploads do not count today.
    tomorrow = now + 86400
    assert await rails.check(third, tomorrow, reads(ledger)) is None


async def test_skipped_clip_is_sent_after_retry(ledger: Ledger) -> None:
    now = datetime.now(UTC).timestamp()
    rails = Guardrails({"yard": CameraRules(budget=Budget(bytes=100))})
    clip, _ = ledger.clips.add(NewClip("yard", Path("big.mp4"), 1000, None, 10))
    taken = ledger.uploads.take_for_upload()
    assert taken is not None
    state, reason = await rails.check(taken, now, reads(ledger)) or (None, "")
    assert state is ClipState.SKIPPED_BUDGET
    ledger.uploads.mark_skipped(clip.id, state, reason)
    skipped = ledger.clips.get(clip.id)
    assert skipped is not None and skipped.state is ClipState.SKIPPED_BUDGET
    assert skipped.attempts == 0
    assert ledger.uploads.retry([clip.id]) == [clip.id]
    again = ledger.uploads.take_for_upload()
    assert again is not None and again.exempt
    assert await rails.check(again, now, reads(ledger)) is None
