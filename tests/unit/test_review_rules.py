"""Frigate's review items in the ledger and the rules that judge recordings by them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edged.clip import ClipState
from edged.config.frigate import FrigateGateConfig
from edged.ledger.activity import Neighbour
from edged.ledger.reviews import Review
from edged.ledger.store import Ledger
from edged.sources.review_rules import MAX_OPEN_S, decide, rescued

CONFIG = FrigateGateConfig(host="h", wait=10.0, pre_roll=1.0, post_roll=1.0)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START = T0.timestamp()


def person(start: float, end: float | None, review_id: str = "r") -> Review:
    return Review(review_id, "door", start, end, "alert", ("person",))


def test_later_messages_add_to_a_review_and_never_take_away(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.reviews.upsert(Review("r", "door", 100.0, None, "alert", ("person",)))
    # Forged or odd: another camera and start, a car only, detection, an earlier end.
    ledger.reviews.upsert(Review("r", "yard", 900.0, 150.0, "detection", ("car",)))
    ledger.reviews.upsert(Review("r", "yard", 900.0, 120.0, "detection", ("car",)))
    ledger.reviews.upsert(Review("r", "yard", 900.0, None, "detection", ()))
    stored = ledger.reviews.get("r")
    assert stored is not None
    assert (stored.camera, stored.start_at, stored.end_at, stored.severity) == (
        "door",
        100.0,
        150.0,  # the later of the two ends; an open message does not reopen it
        "alert",
    )
    assert set(stored.objects) == {"person", "car"}
    ledger.close()


def test_old_reviews_are_pruned_open_or_ended(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.reviews.upsert(person(100.0, None, "open-old"))
    ledger.reviews.upsert(person(100.0, 200.0, "ended-old"))
    ledger.reviews.upsert(person(5000.0, None, "open-new"))
    assert ledger.reviews.prune(1000.0) == 2
    assert [r.id for r in ledger.reviews.around("door", 0.0, 1e9)] == ["open-new"]
    ledger.close()


def test_a_review_whose_end_was_never_heard_reaches_six_hours_at_most() -> None:
    open_review = person(START - MAX_OPEN_S - 600, None)
    long_after = decide(
        CONFIG, T0, 10.0, [open_review], connected_since=START - 2 * MAX_OPEN_S, now=START + 60
    )
    assert long_after.send is False
    within = decide(
        CONFIG, T0, 10.0, [person(START - 600, None)], connected_since=START - 3600, now=START + 60
    )
    assert within.send is True


def test_a_late_review_takes_back_the_recordings_it_covers_and_no_others() -> None:
    def recording(clip_id: int, offset_s: float, state: ClipState) -> Neighbour:
        start = datetime.fromtimestamp(START + offset_s, UTC)
        return Neighbour(clip_id, start, 10.0, state, None)

    nearby = [
        recording(1, 0, ClipState.SKIPPED_IDLE),  # covered
        recording(2, 10, ClipState.SKIPPED_IDLE),  # covered (the review ends at 12 s)
        recording(3, 30, ClipState.SKIPPED_IDLE),  # beyond it and its rolls
        recording(4, 0, ClipState.QUEUED),  # sent already
    ]
    review = person(START + 5, START + 12)
    assert rescued(CONFIG, review, nearby, now=START + 100) == [1, 2]
    car = Review("c", "door", START + 5, START + 12, "alert", ("car",))
    assert rescued(CONFIG, car, nearby, now=START + 100) == []
