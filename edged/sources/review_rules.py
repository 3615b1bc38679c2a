"""Whether a Frigate recording is sent (`upload: frigate`): by the review items around it.

A recording goes when a review item of its camera, whose objects include one of the labels
and whose severity is one of the severities, overlaps it widened by the rolls (an open item
reaches to now). Without one it waits up to `wait` after its end (Frigate may publish the
item after the recording is found), then is kept back as skipped_idle, but only if the
reviews were being heard for the whole of that time: a recording whose time the subscriber
may have missed is sent, not skipped unseen. Pure: times and reviews in, a decision out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from edged.clip import ClipState
from edged.config.frigate import FrigateGateConfig
from edged.ledger.activity import Neighbour
from edged.ledger.reviews import Review


@dataclass(frozen=True, slots=True)
class Decision:
    send: bool | None  # None: wait (for a review, or for the broker)
    reason: str


WAIT = Decision(None, "waiting for Frigate's review items")
#: An open review item reaches to now, but no further than this after its start: one whose
#: end was never heard (a broker drop, a forged item) must not send every recording for ever.
MAX_OPEN_S = 6 * 3600.0


def reach(review: Review, now: float) -> float:
    """Where the review ends, for judging recordings."""
    if review.end_at is not None:
        return review.end_at
    return min(now, review.start_at + MAX_OPEN_S)


def window(config: FrigateGateConfig, start: datetime, duration_s: float) -> tuple[float, float]:
    begin = start.timestamp()
    return begin - config.pre_roll, begin + duration_s + config.post_roll


def matches(config: FrigateGateConfig, review: Review) -> bool:
    return review.severity in config.severities and any(
        label in config.labels for label in review.objects
    )


def rescued(
    config: FrigateGateConfig, review: Review, recordings: Iterable[Neighbour], now: float
) -> list[int]:
    """The recordings kept back that a review heard since takes back: it overlaps them (with
    the rolls). A review that arrives late, or gains a person later, still sends them."""
    if not matches(config, review):
        return []
    found = []
    for recording in recordings:
        if recording.state is not ClipState.SKIPPED_IDLE:
            continue
        if recording.start is None or recording.duration_s is None:
            continue
        begin, end = window(config, recording.start, recording.duration_s)
        if review.start_at < end and reach(review, now) > begin:
            found.append(recording.clip_id)
    return found


def decide(
    config: FrigateGateConfig,
    start: datetime | None,
    duration_s: float | None,
    reviews: Iterable[Review],
    *,
    connected_since: float | None,
    now: float,
) -> Decision:
    if start is None or duration_s is None:
        return Decision(True, "its time is unknown: sent without a review")
    begin, end = window(config, start, duration_s)
    for review in reviews:
        if matches(config, review) and review.start_at < end and reach(review, now) > begin:
            labels = ", ".join(label for label in review.objects if label in config.labels)
            return Decision(True, f"Frigate review {review.id} ({review.severity}: {labels})")
    waited = now >= end + config.wait
    heard_throughout = connected_since is not None and connected_since <= begin
    if not waited:
        return WAIT
    if not heard_throughout:
        return Decision(True, "Frigate's reviews were not heard for its whole time: sent")
    wanted = ", ".join(config.labels)
    return Decision(False, f"no Frigate review with {wanted} around it")
