"""Exponential backoff with full jitter: spreads retries of many clips so that a recovering
service is not hit by a synchronised wave."""

from __future__ import annotations

import random


def full_jitter(
    attempt: int, *, base_s: float = 5.0, cap_s: float = 900.0, rng: random.Random | None = None
) -> float:
    """Delay before retry `attempt` (1-based): uniform in [0, min(cap, base·2^(attempt-1))]."""
    ceiling = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0, ceiling)


def retry_delay(
    attempt: int,
    retry_after_s: float | None,
    *,
    base_s: float = 5.0,
    cap_s: float = 900.0,
    rng: random.Random | None = None,
) -> float:
    """The server's Retry-After is a floor: never come back sooner than it asked."""
    delay = full_jitter(attempt, base_s=base_s, cap_s=cap_s, rng=rng)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap_s * 4))
    return delay
