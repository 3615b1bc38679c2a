"""When a camera's held clips become an event clip: pure, clips and times in, groups out.

Held clips (`in_event`: to be sent, with their activity or their rolls) that follow one
another without a gap are one event. An event is over, and is joined and queued, when:

- its own footage reaches past its last activity by the post-roll (`upload: activity`; an RTSP
  camera examined live ends its clip there): the activity is over, its post-roll too;
- footage after it was judged not worth sending (a clip of the camera that starts where the
  event ends, kept back idle or sent on its own);
- it reached `max_event` (or the API's limits on length and size): it is closed there, and
  what follows starts the next one;
- nothing came after it for a clip's length and `quiet_after_s` (the camera stopped, or its
  next clip is still being judged for that long): footage must not wait for ever.

Each clip is judged when it is finished, so an event ends at the end of the clip in which
its post-roll passed, not sooner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from edged.clip import ClipState

#: Clips further apart than this are not one event (recorders leave ~a frame between clips).
GAP_S = 2.0
#: Clip lengths come from timestamps, which jitter by a few ticks around a keyframe.
SLACK_S = 0.05
#: States in which a clip is still being judged, or held: not yet footage "after" an event.
UNDECIDED = frozenset({ClipState.EXAMINING, ClipState.IN_EVENT})


@dataclass(frozen=True, slots=True)
class Piece:
    """A clip of one camera as the event rules see it."""

    clip_id: int
    start: datetime
    duration_s: float
    size: int
    state: ClipState
    found_at: float
    #: The end of its last active second (epoch seconds); None when it had none, or was not
    #: examined for activity (Frigate's reviews decide those).
    active_until: float | None = None

    @property
    def begin(self) -> float:
        return self.start.timestamp()

    @property
    def end(self) -> float:
        return self.begin + self.duration_s


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_s: float
    max_bytes: int
    #: Beyond one clip's length: how long the next clip may take to be found and judged
    #: (the post-roll, Frigate's wait, a margin) before the event is closed without it.
    quiet_after_s: float
    #: `upload: activity`: an event is over once its footage reaches this far past its last
    #: activity. None: only what follows it says so (Frigate's reviews).
    post_roll_s: float | None = None
    #: `upload: activity`: the event clip keeps this much before its first activity (and
    #: `post_roll_s` after its last), cut at keyframes. None: kept whole (Frigate's reviews).
    pre_roll_s: float | None = None


def runs(held: Sequence[Piece], limits: Limits) -> list[list[Piece]]:
    """Held clips in order of time, cut where there is a gap or a limit would be passed."""
    groups: list[list[Piece]] = []
    for piece in sorted(held, key=lambda p: p.begin):
        group = groups[-1] if groups else None
        if group is not None and piece.begin - group[-1].end <= GAP_S:
            length = piece.end - group[0].begin
            size = sum(p.size for p in group) + piece.size
            if length <= limits.max_event_s and size <= limits.max_bytes:
                group.append(piece)
                continue
        groups.append([piece])
    return groups


def due(
    held: Sequence[Piece], others: Iterable[Piece], limits: Limits, now: float
) -> list[list[Piece]]:
    """The events of one camera that are over now."""
    others = list(others)
    judged_after = [p.begin for p in others if p.state not in UNDECIDED]
    groups = runs(held, limits)
    over = []
    for index, group in enumerate(groups):
        end = group[-1].end
        following = groups[index + 1] if index + 1 < len(groups) else None
        if following is not None and following[0].begin - end <= GAP_S:
            over.append(group)  # cut by max_event or the API's limits: what follows goes next
            continue
        # The clip right before it still being judged may yet be its pre-roll.
        before = any(
            p.state is ClipState.EXAMINING and abs(p.end - group[0].begin) <= GAP_S for p in others
        )
        if post_roll_passed(group, limits) and not before:
            over.append(group)
            continue
        # The clip right after it is still being judged (clips are not always judged in the
        # order of their time: a folder's catch-up, a restart): it may yet continue the event.
        if any(p.state is ClipState.EXAMINING and abs(p.begin - end) <= GAP_S for p in others):
            continue
        judged = any(begin >= end - GAP_S for begin in judged_after)
        longest = max(p.duration_s for p in group)
        quiet = now - max(p.found_at for p in group) >= longest + limits.quiet_after_s
        if following is not None or judged or quiet:
            over.append(group)
    return over


def post_roll_passed(group: Sequence[Piece], limits: Limits) -> bool:
    """The group's own footage reaches past its last activity by the post-roll."""
    if limits.post_roll_s is None:
        return False
    active_until = [p.active_until for p in group if p.active_until is not None]
    if not active_until:
        return False
    return group[-1].end + SLACK_S >= max(active_until) + limits.post_roll_s
