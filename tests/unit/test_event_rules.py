"""When a camera's held clips become an event clip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from edged.clip import ClipState
from edged.sources.event_rules import Limits, Piece, due

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_event_s=600.0, max_bytes=1 << 40, quiet_after_s=20.0)


def piece(clip_id: int, index: int, state: ClipState, found_at: float = 0.0) -> Piece:
    return Piece(clip_id, T0 + timedelta(seconds=10 * index), 10.0, 1, state, found_at)


def test_an_event_is_over_once_the_clip_after_it_is_judged_not_to_go() -> None:
    held = [piece(1, 0, ClipState.IN_EVENT), piece(2, 1, ClipState.IN_EVENT)]
    now = T0.timestamp() + 30
    assert due(held, [piece(3, 2, ClipState.EXAMINING, now)], LIMITS, now) == []
    (over,) = due(held, [piece(3, 2, ClipState.SKIPPED_IDLE, now)], LIMITS, now)
    assert [p.clip_id for p in over] == [1, 2]


def test_a_later_clip_judged_first_does_not_close_an_event_the_next_one_may_continue() -> None:
    """A catch-up gave the clips ids out of their order: the clip right after the event is
    still examining while a later one was already judged idle."""
    held = [piece(1, 0, ClipState.IN_EVENT)]
    others = [piece(2, 1, ClipState.EXAMINING), piece(3, 2, ClipState.SKIPPED_IDLE)]
    assert due(held, others, LIMITS, T0.timestamp() + 40) == []


def test_max_event_cuts_an_event_and_what_follows_starts_the_next() -> None:
    limits = Limits(max_event_s=25.0, max_bytes=1 << 40, quiet_after_s=20.0)
    held = [piece(i, i, ClipState.IN_EVENT) for i in range(1, 5)]
    now = T0.timestamp() + 60
    over = due(held, [piece(9, 5, ClipState.EXAMINING, now)], limits, now)
    assert [[p.clip_id for p in group] for group in over] == [[1, 2]]  # the rest may go on


def test_an_event_nothing_follows_is_closed_after_a_quiet_while() -> None:
    held = [piece(1, 0, ClipState.IN_EVENT, found_at=T0.timestamp() + 10)]
    assert due(held, [], LIMITS, T0.timestamp() + 30) == []
    assert len(due(held, [], LIMITS, T0.timestamp() + 41)) == 1


def active_piece(clip_id: int, index: int, active_until_s: float | None) -> Piece:
    """A held clip whose activity ends `active_until_s` into it (None: none)."""
    held = piece(clip_id, index, ClipState.IN_EVENT, found_at=T0.timestamp() + 10 * index + 10)
    until = None if active_until_s is None else held.begin + active_until_s
    return replace(held, active_until=until)


POST_ROLL = Limits(max_event_s=600.0, max_bytes=1 << 40, quiet_after_s=20.0, post_roll_s=5.0)


def test_an_event_whose_post_roll_passed_in_its_own_footage_is_over_without_the_next_clip() -> None:
    """Activity until 4 s into the second clip, a 5 s post-roll: over at 9 s, inside it; the
    clip after it, still being examined, cannot continue it and is not waited for."""
    held = [active_piece(1, 0, 10.0), active_piece(2, 1, 4.0)]
    now = T0.timestamp() + 20
    (over,) = due(held, [piece(3, 2, ClipState.EXAMINING, now)], POST_ROLL, now)
    assert [p.clip_id for p in over] == [1, 2]


def test_an_event_whose_post_roll_reaches_past_its_footage_waits_for_the_next_clip() -> None:
    held = [active_piece(1, 0, 10.0), active_piece(2, 1, 6.0)]  # post-roll until 11 s in
    now = T0.timestamp() + 20
    assert due(held, [piece(3, 2, ClipState.EXAMINING, now)], POST_ROLL, now) == []
    # An earlier clip's activity does not count for the event's end: the latest does.
    held = [active_piece(1, 0, 2.0), active_piece(2, 1, None), active_piece(3, 2, 9.0)]
    now = T0.timestamp() + 30
    assert due(held, [], POST_ROLL, now) == []


def test_without_a_post_roll_rule_activity_in_the_footage_does_not_close_an_event() -> None:
    """Frigate's cameras: only what follows the event says it is over."""
    held = [active_piece(1, 0, 1.0)]
    now = T0.timestamp() + 10
    assert due(held, [piece(2, 1, ClipState.EXAMINING, now)], LIMITS, now) == []


def test_an_event_whose_post_roll_passed_waits_for_the_clip_before_it_still_being_judged() -> None:
    """Found out of order (a catch-up): the clip right before the event may be its pre-roll;
    closing without it would send it on its own."""
    held = [active_piece(2, 1, 3.0)]
    now = T0.timestamp() + 20
    assert due(held, [piece(1, 0, ClipState.EXAMINING, now)], POST_ROLL, now) == []
    (over,) = due(held, [piece(1, 0, ClipState.SKIPPED_IDLE, now)], POST_ROLL, now)
    assert [p.clip_id for p in over] == [2]
