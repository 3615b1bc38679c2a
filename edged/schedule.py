"""Hours of the day and daily budgets as values: the rules a camera's schedule, quiet hours
and budgets are written in, and the UTC day the budgets are counted in.

Pure values with no I/O; the config builds them, the uploader's guardrails and the alert
policy apply them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo

_RANGE = re.compile(r"^(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)$")


@dataclass(frozen=True, slots=True)
class HourRange:
    start: time
    end: time  # exclusive; a range whose end is not after its start runs across midnight

    @classmethod
    def parse(cls, text: str) -> HourRange:
        match = _RANGE.match(text.strip())
        if not match:
            raise ValueError(f"{text!r}: expected a range of hours such as 22:00-06:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h2 == 24 and m2 == 0:
            h2, m2 = 0, 0  # 18:00-24:00 means up to midnight
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"{text!r}: hours are 00:00 to 24:00")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end  # across midnight (or all day)


def in_schedule(when: datetime, ranges: Sequence[HourRange], zone: tzinfo | None) -> bool:
    """True when `when` falls in one of the ranges, read in `zone` (None: this machine's)."""
    if not ranges:
        return True
    local = when.astimezone(zone) if zone is not None else when.astimezone()
    return any(r.contains(local.time().replace(tzinfo=None)) for r in ranges)


@dataclass(frozen=True, slots=True)
class Budget:
    clips: int | None = None
    minutes: float | None = None
    bytes: int | None = None


@dataclass(frozen=True, slots=True)
class DayUsage:
    """What the API accepted since the start of a UTC day, to hold against a `Budget`."""

    clips: int
    seconds: float
    bytes: int


def utc_day_start(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()
