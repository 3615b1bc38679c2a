"""One line in the log at the end of each UTC day: what was recorded, what was sent, what it
cost (seconds, the share, idle clips kept back, events, tokens), for whoever reads the
journal rather than /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from edged.ledger.reports import Footage
from edged.ledger.thread import AsyncLedger
from edged.schedule import utc_day_start

log = logging.getLogger(__name__)

DAY_S = 86400.0


def day_line(day_start: float, footage: Footage, tokens: int) -> str:
    day = datetime.fromtimestamp(day_start, UTC).date().isoformat()
    share = footage.uploaded_share
    sent = f" ({share:.0%})" if share is not None else ""
    per_event = footage.tokens_per_event
    events = f", {per_event:.0f} tokens per event" if per_event is not None else ""
    return (
        f"day {day} (UTC): {footage.recorded_s:.0f} s of video recorded,"
        f" {footage.uploaded_s:.0f} s uploaded{sent}, {footage.skipped_idle} clips without"
        f" activity kept back, {footage.events} events{events}, {tokens} tokens"
    )


class DailyReport:
    def __init__(
        self,
        db: AsyncLedger,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._db = db
        self._clock = clock
        self._sleep = sleep

    async def run(self) -> None:
        while True:
            today = utc_day_start(self._clock())
            await self._sleep(max(1.0, today + DAY_S - self._clock() + 1.0))
            await self.report(today)

    async def report(self, day_start: float) -> str:
        ledger = self._db.ledger
        footage = await self._db.call(ledger.reports.footage_between, day_start, day_start + DAY_S)
        tokens = await self._db.call(ledger.reports.tokens_between, day_start, day_start + DAY_S)
        line = day_line(day_start, footage, tokens)
        log.info("%s", line)
        return line
