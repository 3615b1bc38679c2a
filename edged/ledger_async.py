"""Runs ledger calls on one dedicated thread, so the event loop never blocks on SQLite."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from edged.ledger import Ledger

P = ParamSpec("P")
T = TypeVar("T")


class AsyncLedger:
    """`await db.run(db.ledger.take_for_upload)`: one thread owns the connection, which also
    serialises the transitions of concurrent stages."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def aclose(self) -> None:
        await self.run(self.ledger.close)
        self._executor.shutdown(wait=True)
