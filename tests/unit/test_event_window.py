"""What of an event's footage its clip keeps (`upload: activity`): the activity and its rolls,
in seconds from the first member's start and from the last's."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edged.clip import Clip, ClipState
from edged.ledger.activity import Neighbour
from edged.media.concat import ConcatError, Trim
from edged.sources.event_maker import kept_span
from edged.sources.event_rules import Limits

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROLLS = Limits(600.0, 1 << 40, 20.0, post_roll_s=5.0, pre_roll_s=5.0)


def member(index: int) -> Clip:
    """The camera's `index`th clip of 12 s, held for an event."""
    return Clip(
        id=index, camera="yard", path=Path(f"/nvr/{index}.mp4"), size=1,
        state=ClipState.IN_EVENT, attempts=0, start=T0 + timedelta(seconds=12 * index),
        duration_s=12.0, callback_token=None, task_id=None, last_error=None,
        next_attempt_at=None, found_at=0.0,
    )  # fmt: skip


def examined(index: int, *active: int, state: ClipState = ClipState.IN_EVENT) -> Neighbour:
    clip = member(index)
    return Neighbour(clip.id, clip.start, clip.duration_s, state, tuple(active))


def test_the_event_keeps_its_activity_and_the_rolls_around_it() -> None:
    """Someone in clip 1 from its 4th to its 7th second: from 1 s before clip 1 (clip 0's
    11th second) to 5 s after the end of the 7th (clip 2's 1st), and clip 2 up to its last
    5 s, which a walk in the clip after it may need as its pre-roll."""
    members = [member(0), member(1), member(2)]
    nearby = [
        examined(0),
        examined(1, 4, 5, 6, 7),
        examined(2),
        examined(3, state=ClipState.SKIPPED_IDLE),
    ]
    assert kept_span(members, nearby, ROLLS) == Trim(11.0, 7.0)


def test_rolls_that_reach_past_the_event_keep_its_first_and_last_clips_whole() -> None:
    members = [member(0), member(1)]
    nearby = [examined(0, 2), examined(1, 9)]  # 2 - 5 < 0 and 12 + 9 + 1 + 5 > 24
    assert kept_span(members, nearby, ROLLS) == Trim(None, None)
    assert kept_span(members, [examined(0, 2), examined(1, 3)], ROLLS) == Trim(None, 9.0)


def test_the_activity_after_an_event_cut_by_max_event_keeps_its_end() -> None:
    """Someone in clip 0 at its 10th second: its post-roll ends 4 s into clip 1, where
    max_event closed the event. Clip 2, the next event, has activity from its 1st second,
    whose pre-roll reaches 4 s back into clip 1: clip 1 is kept to its end (without it, up to
    its last pre_roll, 7 s in)."""
    members = [member(0), member(1)]
    assert kept_span(members, [examined(0, 10), examined(1)], ROLLS) == Trim(5.0, 7.0)
    nearby = [examined(0, 10), examined(1), examined(2, 1, 2)]
    assert kept_span(members, nearby, ROLLS) == Trim(5.0, None)


def test_a_first_or_last_clip_the_rolls_do_not_reach_is_kept_whole() -> None:
    """Held, so sent: never cut down to a keyframe's worth because no roll reaches it."""
    members = [member(0), member(1), member(2)]
    assert kept_span(members, [examined(0), examined(1, 5), examined(2)], ROLLS) == Trim()


def test_frigate_events_and_members_without_their_activity_are_kept_whole() -> None:
    members = [member(0), member(1), member(2)]
    nearby = [examined(0), examined(1, 4), examined(2)]
    frigate = Limits(600.0, 1 << 40, 20.0)  # no rolls: Frigate's reviews decided
    assert kept_span(members, nearby, frigate) == Trim()
    unknown = [examined(1, 4), examined(2)]  # clip 0's activity is not at hand
    assert kept_span(members, unknown, ROLLS) == Trim()


def test_a_cut_at_no_number_is_refused_as_a_join_that_cannot_be_made() -> None:
    """Refused with the join's own error, which sends the clips one by one."""
    for value in (math.nan, math.inf):
        with pytest.raises(ConcatError, match="cannot cut an event clip"):
            Trim(value, None)
        with pytest.raises(ConcatError, match="cannot cut an event clip"):
            Trim(None, value)
