"""Requests the public listener turned away: counted by reason, logged sparingly.

Anyone on the internet can send them, so no client must be able to fill the log: a remote
address gets one line when it is first turned away (at most ten new addresses a minute,
the rest counted in one line), then at most one a minute with the count of what it sent
meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from edged.printable import printable

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
#: New addresses named per minute; the rest are counted in one line.
FIRST_LINES_PER_MINUTE = 10
#: Remote addresses remembered for the rate limit; the oldest is forgotten first.
MAX_REMOTES = 4096

CountHook = Callable[[str], None]


class Rejections:
    def __init__(
        self, *, on_count: CountHook | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.counts: Counter[str] = Counter()
        self._on_count = on_count
        self._clock = clock
        # remote → (when it was last logged, requests turned away since, their reasons)
        self._remotes: OrderedDict[str, tuple[float, int, Counter[str]]] = OrderedDict()
        self._window_from = clock()
        self._window_lines = 0
        self._unlogged = 0  # new addresses not named in this window

    def reject(self, remote: str | None, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if self._on_count is not None:
            self._on_count(reason)
        key = remote or "unknown"
        now = self._clock()
        entry = self._remotes.pop(key, None)
        if entry is None:
            if self._first_line_allowed(now):
                log.warning(
                    "callback listener: turned away a request from %s: %s%s",
                    printable(key),
                    reason,
                    f" ({printable(detail)})" if detail else "",
                )
            entry = (now, 0, Counter())
        else:
            logged_at, held, reasons = entry
            reasons[reason] += 1
            held += 1
            if now - logged_at >= LOG_EVERY_S:
                summary = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items()))
                log.warning(
                    "callback listener: turned away %d more requests from %s in the last"
                    " %.0fs (%s)",
                    held,
                    printable(key),
                    now - logged_at,
                    summary,
                )
                entry = (now, 0, Counter())
            else:
                entry = (logged_at, held, reasons)
        self._remotes[key] = entry
        while len(self._remotes) > MAX_REMOTES:
            self._remotes.popitem(last=False)

    def _first_line_allowed(self, now: float) -> bool:
        """Many addresses (a botnet, an IPv6 range) share one budget of first lines."""
        if now - self._window_from >= LOG_EVERY_S:
            if self._unlogged:
                log.warning(
                    "callback listener: turned away requests from %d more addresses in the"
                    " last %.0fs",
                    self._unlogged,
                    now - self._window_from,
                )
            self._window_from, self._window_lines, self._unlogged = now, 0, 0
        if self._window_lines < FIRST_LINES_PER_MINUTE:
            self._window_lines += 1
            return True
        self._unlogged += 1
        return False
