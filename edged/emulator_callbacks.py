"""The emulator's side of callbacks: delayed, duplicated and retried POSTs of results."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from edged.emulator_options import CallbackRecord

log = logging.getLogger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class Delivery:
    """A callback to send, with the options as they were when the upload was acknowledged."""

    url: str
    task_id: str
    body: dict[str, Any]
    delay_s: float
    copies: int
    retries: int
    retry_delay_s: float


class CallbackSender:
    """Owns the client session and every pending delivery task; both end with the app."""

    def __init__(self, sent: list[CallbackRecord], notify: Callable[[], None]) -> None:
        self._sent = sent
        self._notify = notify
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """An aiohttp cleanup context: pending deliveries are cancelled on shutdown."""
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        try:
            yield
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._session.close()
            self._session = None

    def schedule(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(
            self._deliver(delivery), name=f"emulator-callback-{delivery.task_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        await asyncio.sleep(delivery.delay_s)
        for copy in range(delivery.copies):
            for attempt in range(1, delivery.retries + 2):
                if await self._post(delivery, copy, attempt):
                    break
                if attempt <= delivery.retries:
                    await asyncio.sleep(delivery.retry_delay_s)

    async def _post(self, delivery: Delivery, copy: int, attempt: int) -> bool:
        """One POST; True when the receiver answered 2xx."""
        if self._session is None:
            raise RuntimeError("callbacks are sent only while the emulator app runs")
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(delivery.url, json=delivery.body) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        self._sent.append(
            CallbackRecord(
                url=delivery.url,
                task_id=delivery.task_id,
                body=delivery.body,
                copy=copy,
                attempt=attempt,
                status=status,
                error=error,
                sent_at=time.time(),
            )
        )
        self._notify()
        # Only the origin is logged: callback paths carry edged's per-clip secret token.
        log.info(
            "callback task=%s to %s copy=%d attempt=%d -> %s",
            delivery.task_id,
            URL(delivery.url).origin(),
            copy,
            attempt,
            status if status is not None else error,
        )
        return status is not None and 200 <= status < 300
