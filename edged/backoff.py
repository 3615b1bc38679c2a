"""Exponential backoff with full jitter: spreads retries of many clips so that a recovering
service is not hit by a synchronised wave."""

from __future__ import annotations

import math
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


def delay_ceiling(attempt: int, *, base_s: float = 5.0, cap_s: float = 900.0) -> float:
    """The longest full_jitter delay before retry `attempt`."""
    return min(cap_s, base_s * 2 ** max(0, attempt - 1))


def tries_bound(
    window_s: float,
    *,
    base_s: float = 5.0,
    cap_s: float = 900.0,
    retry_after_s: float | None = None,
    tail: float = 1e-9,
) -> int:
    """The most requests one clip makes in `window_s` of failures, except with probability
    `tail` at most: the bound on the request rate during an outage.

    A clip's (n+1)-th try in the window needs its first n delays to add up to at most the
    window. Those delays are independent, each uniform up to its ceiling and at least the
    Retry-After floor, so a Chernoff bound, P(sum <= w) <= e^(λw)·Π E[e^(-λ·delay)],
    minimised over λ, says how unlikely that is. A clip that enters the window having
    failed before waits longer, so counting its failures from the first is the worst case.
    """
    floor = 0.0 if retry_after_s is None else min(retry_after_s, cap_s * 4)
    lambdas = [10 ** (k / 20) for k in range(-120, 61)]  # 1e-6 .. 1e3 per second
    log_bound = [lam * window_s for lam in lambdas]  # log of e^(λw), then the factors
    tries = 1
    while True:
        ceiling = delay_ceiling(tries, base_s=base_s, cap_s=cap_s)
        for index, lam in enumerate(lambdas):
            log_bound[index] += _log_laplace(lam, ceiling, floor)
        if min(log_bound) <= math.log(tail):
            return tries
        tries += 1


def _log_laplace(lam: float, ceiling: float, floor: float) -> float:
    """log E[e^(-λ·max(U, floor))] for U uniform on [0, ceiling], in logs so that nothing
    underflows: the share of U under the floor waits the floor, the rest waits U."""
    if floor >= ceiling:
        return -lam * floor
    spread = -math.expm1(-lam * (ceiling - floor)) / lam
    return -lam * floor + math.log(floor + spread) - math.log(ceiling)
