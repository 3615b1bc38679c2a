"""Cost guardrails: upload schedules and daily budgets, checked before a clip is uploaded.

A clip outside its camera's `schedule:` hours, or over a daily `budget:` (clips, minutes of
video or bytes; globally and per camera), is not uploaded but kept as `skipped_schedule` or
`skipped_budget`: visible in `edged status`, and sent anyway after `edged retry` (which
exempts it from the guardrails). Days are UTC days, like the service's billing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import NamedTuple

from edged.clip import Clip, ClipState
from edged.schedule import Budget, DayUsage, HourRange, in_schedule, utc_day_start

#: Today's usage since a moment, of one camera (or of all, for None): a ledger read.
UsageSince = Callable[[float, str | None], Awaitable[DayUsage]]


class Skip(NamedTuple):
    """Why a clip is not uploaded: the state it is kept in, and the reason shown for it."""

    state: ClipState
    reason: str


def over_budget(usage: DayUsage, clip: Clip, budget: Budget) -> str | None:
    """Why uploading `clip` on top of today's `usage` would break `budget`; None if it fits."""
    if budget.clips is not None and usage.clips + 1 > budget.clips:
        return f"{budget.clips} clips a day"
    if budget.minutes is not None:
        seconds = usage.seconds + (clip.duration_s or 0.0)
        if seconds > budget.minutes * 60:
            return f"{budget.minutes:g} minutes of video a day"
    if budget.bytes is not None and usage.bytes + clip.size > budget.bytes:
        return f"{budget.bytes} bytes a day"
    return None


@dataclass(frozen=True, slots=True)
class CameraRules:
    schedule: tuple[HourRange, ...] = ()
    zone: tzinfo | None = None
    budget: Budget | None = None


@dataclass(frozen=True, slots=True)
class Guardrails:
    """What `check` needs from the config: rules per camera (by clip camera name) and the
    budget of the whole box."""

    cameras: dict[str, CameraRules]
    total: Budget | None = None

    async def check(self, clip: Clip, now: float, usage_since: UsageSince) -> Skip | None:
        """None: upload it. Decided here, on the loop; only the reads of today's usage go to
        the ledger's thread (`usage_since`)."""
        if clip.exempt:
            return None
        rules = self.cameras.get(clip.source or clip.camera, CameraRules())
        when = clip.start or datetime.fromtimestamp(clip.found_at, UTC)
        if not in_schedule(when, rules.schedule, rules.zone):
            return Skip(ClipState.SKIPPED_SCHEDULE, "recorded outside the camera's upload schedule")
        day = utc_day_start(now)
        for budget, camera, scope in (
            (rules.budget, clip.camera, f"camera {clip.camera}"),
            (self.total, None, "the whole box"),
        ):
            if budget is None:
                continue
            reason = over_budget(await usage_since(day, camera), clip, budget)
            if reason is not None:
                return Skip(ClipState.SKIPPED_BUDGET, f"over the budget of {scope}: {reason}")
        return None
