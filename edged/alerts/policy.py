"""Which matches become alerts: the person policy, quiet hours and the hourly limit.

Decisions that depend only on the clip (a person's `alert: never`, camera filters, quiet
hours) are taken when the analyzed clip's alerts are queued (edged/alerts/analyzer.py). The hourly
limit, like the cooldown, depends on what was actually sent, so the outbox worker checks it
when an alert is due (edged/alerts/delivery.py, with `over_hourly_limit` below).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from edged.config.alerts import WEEKDAYS
from edged.schedule import HourRange

HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class PersonRule:
    """persons[].alert and persons[].cameras of one person."""

    alert: bool = True
    only: frozenset[str] | None = None
    excluded: frozenset[str] = frozenset()

    def allows(self, camera: str) -> bool:
        if self.only is not None:
            return camera in self.only
        return camera not in self.excluded


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """One alerts.quiet_hours entry: no alerts for sightings inside it."""

    hours: HourRange
    text: str  # as configured, for log lines
    cameras: frozenset[str] | None = None  # None: every camera
    days: frozenset[int] | None = None  # weekdays (Monday 0) the window starts on
    zone: tzinfo | None = None  # None: this machine's local time

    def covers(self, camera: str, when: float) -> bool:
        if self.cameras is not None and camera not in self.cameras:
            return False
        local = _local(when, self.zone)
        moment = local.time().replace(tzinfo=None)
        if not self.hours.contains(moment):
            return False
        if self.days is None:
            return True
        # A window across midnight that began yesterday belongs to yesterday's weekday.
        started = local.date()
        if self.hours.start >= self.hours.end and moment < self.hours.end:
            started -= timedelta(days=1)
        return started.weekday() in self.days


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """What the analyzer needs to turn a clip's matches into outbox rows."""

    person_names: tuple[str, ...]
    min_confidence: float
    sink_names: tuple[str, ...]
    instance: str
    persons: Mapping[str, PersonRule] = field(default_factory=dict)
    quiet_hours: tuple[QuietWindow, ...] = ()
    unknown: bool = False

    def skip_reason(self, camera: str, person: str, seen_at: float) -> str | None:
        """Why a sighting raises no alert, or None when it does."""
        rule = self.persons.get(person)
        if rule is not None and not rule.alert:
            return "alert: never"
        if rule is not None and not rule.allows(camera):
            return f"not an alerting camera for {person}"
        for window in self.quiet_hours:
            if window.covers(camera, seen_at):
                return f"quiet hours {window.text}"
        return None


def quiet_window(
    hours: str,
    *,
    cameras: Iterable[str] | None = None,
    days: Iterable[str] | None = None,
    timezone: str | None = None,
) -> QuietWindow:
    """A QuietWindow from the config's words ("22:00-06:00", ["mon"], "Europe/Berlin")."""
    return QuietWindow(
        hours=HourRange.parse(hours),
        text=hours.strip(),
        cameras=frozenset(cameras) if cameras is not None else None,
        days=frozenset(WEEKDAYS.index(day) for day in days) if days is not None else None,
        zone=ZoneInfo(timezone) if timezone else None,
    )


def over_hourly_limit(sent_at: Sequence[float], event_at: float, max_per_hour: int) -> bool:
    """Would one more alert at `event_at` put more than `max_per_hour` alerts in some hour?

    `sent_at` are the sighting times of alerts already sent for the same sink, camera and
    person. Every hour-long window that contains `event_at` is checked, not only the one
    ending there, because a retried alert can be sent after a later one (the reason the
    cooldown looks both ways too). The fullest such window starts at `event_at` or at one
    of the sent alerts before it."""
    starts = [event_at, *(t for t in sent_at if event_at - HOUR_S < t <= event_at)]
    return any(
        sum(1 for t in sent_at if start <= t < start + HOUR_S) >= max_per_hour for start in starts
    )


def _local(when: float, zone: tzinfo | None) -> datetime:
    moment = datetime.fromtimestamp(when, UTC)
    return moment.astimezone(zone) if zone is not None else moment.astimezone()
