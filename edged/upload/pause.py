"""The upload pause: every upload waits while the service refuses the account (a wrong key,
no credit, no permission), with one try every `api.pause_probe_interval` meanwhile.

The pause is kept in the ledger, so `edged status`, /healthz and /metrics show it, and a
pause left by an earlier run is cleared by the first upload accepted after a start. It ends
when an upload begun after it is accepted (a probe, or a try after a reload); an upload begun
before it says nothing of whether it is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edged.aio import first_of
from edged.ledger.thread import AsyncLedger
from edged.upload.api_codes import PAUSE_ADVICE, PauseReason

log = logging.getLogger(__name__)


class UploadPause:
    def __init__(
        self, db: AsyncLedger, probe_every_s: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._probe_every_s = probe_every_s
        self._clock = clock
        self._go = asyncio.Event()  # clear while uploads are held back
        self._go.set()
        self.reason: PauseReason | None = None  # until an upload is accepted again
        self._on_record = True  # a pause of an earlier run may still be in the ledger
        self._since = 0.0
        self._probe: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        """Uploads wait now (between two probes)."""
        return not self._go.is_set()

    async def wait_unless(self, stopping: asyncio.Event) -> None:
        """Until the next try, or a stop: a stop must not wait for a key that may never come."""
        await first_of(self._go.wait(), stopping.wait())

    def try_now(self) -> None:
        """The config was reloaded (a new key, credit bought): try again now rather than at
        the next probe."""
        if not self._go.is_set():
            log.warning("uploads resumed after a reload: trying again now")
            self._go.set()

    async def begin(self, why: PauseReason, message: str) -> None:
        """Every upload waits; one try every probe_every_s, or at once on a reload."""
        first = self.reason is None
        if first:
            self._since = self._clock()
        if self.reason is not why:  # a new pause, or another reason for it
            await self._db.call(self._db.ledger.meta.set_pause, why.value, message, self._clock())
            self._on_record = True
        self.reason = why
        if not self._go.is_set():
            return
        self._go.clear()
        (log.critical if first else log.error)(
            "uploads paused (%s): %s. The queue is kept: %s (one try every %.0fs meanwhile)",
            why.value,
            message,
            PAUSE_ADVICE[why],
            self._probe_every_s,
        )
        if self._probe is not None:
            self._probe.cancel()
        loop = asyncio.get_running_loop()
        self._probe = loop.call_later(self._probe_every_s, self._go.set)

    async def lifted_by(self, upload_started: float) -> None:
        """An upload begun at `upload_started` was accepted."""
        if not self._on_record:
            return
        if self.reason is not None and upload_started < self._since:
            return  # begun before the pause: it says nothing of whether it is over
        why, self.reason = self.reason, None
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        self._go.set()
        await self._db.call(self._db.ledger.meta.set_pause, None, None, self._clock())
        self._on_record = False
        if why is not None:
            log.warning("uploads resumed: the service accepts uploads again (was %s)", why.value)
