"""Clips whose result never came back (callback.result_timeout) are expired, then resubmitted
by the uploader, up to api.max_attempts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edged.config.model import Config
from edged.ledger.thread import AsyncLedger

log = logging.getLogger(__name__)


class Expirer:
    """Clips whose result never came back are expired, then resubmitted by the uploader."""

    def __init__(self, db: AsyncLedger, config: Config, on_expired: Callable[[], None]) -> None:
        self._db = db
        self._timeout_s = config.callback.result_timeout
        self._max_attempts = config.api.max_attempts
        self._on_expired = on_expired
        self._every_s = max(0.2, min(30.0, self._timeout_s / 10))

    async def run(self) -> None:
        while True:
            expired = await self._db.call(
                self._db.ledger.uploads.expire_overdue, self._timeout_s, self._max_attempts
            )
            for clip in expired:
                log.warning(
                    "no result in time camera=%s clip=%s state=%s", clip.camera, clip.id, clip.state
                )
            if expired:
                self._on_expired()
            await asyncio.sleep(self._every_s)
