"""The emulator's side of callbacks: delayed, duplicated, retried and malformed POSTs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from edged.emulator.options import CallbackRecord, EmulatorOptions, parse_callback_fault

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
    malformed: bool = False  # first POST each of malformed_bodies(), once, then the result


def plan_delivery(
    options: EmulatorOptions, url: str, task_id: str, body: dict[str, Any], fault: str | None
) -> Delivery | None:
    """The callback of one acknowledged upload, as the options (or the `callback_faults`
    entry it took) say; None when it never comes."""
    planned = Delivery(
        url=url,
        task_id=task_id,
        body=body,
        delay_s=options.callback_delay_s + options.late_callback_s,
        copies=1 + options.duplicate_callbacks,
        retries=options.callback_retries,
        retry_delay_s=options.callback_retry_delay_s,
    )
    if fault is None:
        return None if options.drop_callbacks else planned
    kind, number = parse_callback_fault(fault)
    plain = dataclasses.replace(planned, delay_s=options.callback_delay_s, copies=1)
    if kind == "drop":
        return None
    if kind == "late":
        return dataclasses.replace(plain, delay_s=plain.delay_s + number)
    if kind == "duplicate":
        return dataclasses.replace(plain, copies=1 + int(number))
    if kind == "malformed":
        return dataclasses.replace(plain, malformed=True)
    return plain


def malformed_bodies(delivery: Delivery) -> list[tuple[str, bytes, str]]:
    """(what, body, content type) of callbacks a receiver must refuse without a change:
    its URL and token are right, the body is not a result of this task."""
    wrong_task = {**delivery.body, "task_id": "task-not-this-one"}
    wrong_task.pop("taskId", None)
    no_text = {"code": 0, "message": "success", "task_id": delivery.task_id, "data": {}}
    oversized = {"code": 0, "task_id": delivery.task_id, "data": {"text": "x" * (1 << 20)}}
    as_json = "application/json"
    return [
        ("not-json", b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        ("truncated", json.dumps(delivery.body).encode()[:40], as_json),
        ("json-array", b"[1, 2, 3]", as_json),
        ("no-envelope", b'{"hello": "world"}', as_json),
        ("no-text", json.dumps(no_text).encode(), as_json),
        ("wrong-task", json.dumps(wrong_task).encode(), as_json),
        ("oversized", json.dumps(oversized).encode(), as_json),
    ]


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
        if delivery.malformed:
            for what, data, content_type in malformed_bodies(delivery):
                await self._post(delivery, 0, 1, raw=(what, data, content_type))
        for copy in range(delivery.copies):
            for attempt in range(1, delivery.retries + 2):
                if await self._post(delivery, copy, attempt):
                    break
                if attempt <= delivery.retries:
                    await asyncio.sleep(delivery.retry_delay_s)

    async def _post(
        self,
        delivery: Delivery,
        copy: int,
        attempt: int,
        *,
        raw: tuple[str, bytes, str] | None = None,
    ) -> bool:
        """One POST of the result (or of `raw`: what, body, type); True when answered 2xx."""
        if self._session is None:
            raise RuntimeError("callbacks are sent only while the emulator app runs")
        status: int | None = None
        error: str | None = None
        if raw is None:
            kind, body = "result", delivery.body
            post = self._session.post(delivery.url, json=delivery.body)
        else:
            kind, body = f"malformed:{raw[0]}", {}
            # As a file object: aiohttp streams it, where large raw bytes would warn.
            data = io.BytesIO(raw[1])
            post = self._session.post(delivery.url, data=data, headers={"Content-Type": raw[2]})
        try:
            async with post as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        self._sent.append(
            CallbackRecord(
                url=delivery.url,
                task_id=delivery.task_id,
                body=body,
                copy=copy,
                attempt=attempt,
                status=status,
                error=error,
                sent_at=time.time(),
                kind=kind,
            )
        )
        self._notify()
        # Only the origin is logged: callback paths carry edged's per-clip secret token.
        log.info(
            "callback %s task=%s to %s copy=%d attempt=%d -> %s",
            kind,
            delivery.task_id,
            URL(delivery.url).origin(),
            copy,
            attempt,
            status if status is not None else error,
        )
        return status is not None and 200 <= status < 300
