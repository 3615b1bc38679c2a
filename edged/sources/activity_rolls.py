"""Which neighbours of a clip go with it: the rolls of the activity gate.

A clip with activity takes its camera's idle clips that overlap `pre_roll` before its first
active second or `post_roll` after its last; an idle clip examined after such a neighbour
goes for the same reason. The rule looks both ways, so the order in which clips are
examined (a folder's backlog, a restart) changes nothing. Pure: times in, decisions out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from edged.clip import ClipState
from edged.ledger.activity import Neighbour

#: A roll reaching less than this into a clip does not take it: timestamps jitter by a few
#: ticks at the keyframe where a clip was cut (as in edged/sources/event_rules.py).
SLACK_S = 0.05


@dataclass(frozen=True, slots=True)
class Span:
    start: float  # epoch seconds
    end: float

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end

    def reaches_into(self, clip: Span) -> bool:
        covered = min(self.end, clip.end) - max(self.start, clip.start)
        return covered > min(SLACK_S, (clip.end - clip.start) / 2)


@dataclass(frozen=True, slots=True)
class Rolls:
    pre_s: float
    post_s: float

    def around(self, start: datetime | None, active: tuple[int, ...]) -> Span | None:
        """The activity of a clip that started at `start`, widened by the rolls."""
        if start is None or not active:
            return None
        begin = start.timestamp()
        return Span(begin + min(active) - self.pre_s, begin + max(active) + 1 + self.post_s)


def span_of(start: datetime | None, duration_s: float | None) -> Span | None:
    if start is None or duration_s is None:
        return None
    return Span(start.timestamp(), start.timestamp() + duration_s)


def idle_to_send(
    rolls: Rolls, start: datetime | None, active: tuple[int, ...], others: Iterable[Neighbour]
) -> list[Neighbour]:
    """The idle neighbours that the activity of a clip (`start`, `active`) takes with it."""
    window = rolls.around(start, active)
    if window is None:
        return []
    return [
        other
        for other in others
        if other.state is ClipState.SKIPPED_IDLE
        and (span := span_of(other.start, other.duration_s)) is not None
        and window.reaches_into(span)
    ]


def rolled_by(
    rolls: Rolls, start: datetime | None, duration_s: float | None, others: Iterable[Neighbour]
) -> Neighbour | None:
    """The neighbour with activity whose rolls take an idle clip (`start`, `duration_s`)."""
    span = span_of(start, duration_s)
    if span is None:
        return None
    for other in others:
        window = rolls.around(other.start, other.active or ())
        if window is not None and window.reaches_into(span):
            return other
    return None
