"""An outage of the service, as the uploads see it: from the first upload it refused or left
unanswered (not for the clip's sake) to the next one it accepts.

After an outage each waiting clip has its own backoff, up to its cap: without `over()` the
backlog would drain only as those timers run out, long after the service is back.
"""

from __future__ import annotations

import logging

from edged.ledger.thread import AsyncLedger

log = logging.getLogger(__name__)


class ServiceOutage:
    def __init__(self, db: AsyncLedger) -> None:
        self._db = db
        self._since: float | None = None
        self._asked_to_wait_until = 0.0  # the latest Retry-After of this outage

    def noted(self, now: float, retry_after_s: float | None) -> None:
        """An upload failed because the service was busy, down or unreachable."""
        if self._since is None:
            self._since = now
        if retry_after_s is not None:
            self._asked_to_wait_until = max(self._asked_to_wait_until, now + retry_after_s)

    async def over(self) -> bool:
        """An upload was accepted: the clips that went to wait during the outage are due now
        (or when the service last asked); True when there were any."""
        if self._since is None:
            return False
        since, self._since = self._since, None
        not_before, self._asked_to_wait_until = self._asked_to_wait_until, 0.0
        due = await self._db.call(self._db.ledger.uploads.retry_now, since, not_before)
        if due:
            log.info("the service is back: %d clips waiting for it are sent now", due)
        return bool(due)
