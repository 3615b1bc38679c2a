"""Runs ledger calls on one dedicated thread, so the event loop never blocks on SQLite."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from edged.aio import within
from edged.ledger.reserve import is_disk_full, release_reserve
from edged.ledger.store import Ledger

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

#: While the disk stays full, a ledger call is tried again this often.
FULL_RETRY_S = 1.0


class AsyncLedger:
    """`await db.call(db.ledger.uploads.take_for_upload)`: one thread owns the connection,
    which also serialises the transitions of concurrent stages."""

    def __init__(self, ledger: Ledger, *, full_retry_s: float = FULL_RETRY_S) -> None:
        self.ledger = ledger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._full_retry_s = full_retry_s

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """A full disk makes the call wait, not fail: each ledger call is one transaction
        (or reads, or idempotent writes before it), which SQLite rolled back whole, so it is
        safe to run again once there is room (see edged/ledger/reserve.py)."""
        loop = asyncio.get_running_loop()
        bound = functools.partial(fn, *args, **kwargs)
        while True:
            try:
                return await loop.run_in_executor(self._executor, bound)
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
            storage_dir = self.ledger.path.parent
            if await loop.run_in_executor(self._executor, release_reserve, storage_dir):
                log.error("disk full under %s: the ledger's reserve was released", storage_dir)
                continue
            log.warning(
                "disk full under %s: ledger writes wait for space (storage.min_free, or "
                "another program filling the disk?)",
                storage_dir,
            )
            await asyncio.sleep(self._full_retry_s)

    async def writable(self, timeout_s: float) -> bool:
        """A real write transaction (the health probe): proves the ledger's thread, the file
        and the disk. False when it fails, or has not committed within `timeout_s` (on a full
        disk it waits, as every call does)."""
        try:
            await within(
                self.call(self.ledger.meta.set, "health_probe", str(time.time())), timeout_s
            )
        except (TimeoutError, OSError, sqlite3.Error):
            return False
        return True

    async def aclose(self) -> None:
        await self.call(self.ledger.close)
        self._executor.shutdown(wait=True)
