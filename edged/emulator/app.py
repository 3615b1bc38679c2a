"""The emulator's aiohttp application: its state, the four API routes, the control endpoints.

`Emulator` holds what was received and sent, records each answer (`answers` decides it) and
wakes whoever waits for requests or callbacks. The control endpoints serve that record to
tests that run the emulator in another process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from edged.emulator.answers import (
    ENDPOINTS,
    Draft,
    Endpoint,
    answer,
    check_auth,
    drop,
    inject_failure,
)
from edged.emulator.callbacks import CallbackSender
from edged.emulator.options import (
    CallbackRecord,
    EmulatorOptions,
    OptionError,
    ReceivedRequest,
)
from edged.emulator.protocol import Rejection, bad_request, error_body
from edged.emulator.upload import answer_early, read_json_body

log = logging.getLogger(__name__)


class Emulator:
    """A local stand-in for the memories.ai security API; see API.md for what it speaks."""

    def __init__(self, options: EmulatorOptions | None = None, *, seed: int | None = None) -> None:
        self.options = options if options is not None else EmulatorOptions()
        self.received: list[ReceivedRequest] = []
        self.callbacks_sent: list[CallbackRecord] = []
        self.host = ""
        self.port = 0
        self._rng = random.Random(seed)
        self._changed = asyncio.Event()
        self._callbacks = CallbackSender(self.callbacks_sent, self._notify)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        for endpoint in ENDPOINTS:
            app.router.add_post(endpoint.path, self._api_handler(endpoint))
        app.router.add_get("/_emulator/requests", self._get_requests)
        app.router.add_get("/_emulator/callbacks", self._get_callbacks)
        app.router.add_get("/_emulator/options", self._get_options)
        app.router.add_post("/_emulator/options", self._post_options)
        app.router.add_post("/_emulator/reset", self._post_reset)
        app.cleanup_ctx.append(self._callbacks.lifecycle)
        return app

    async def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[ReceivedRequest]:
        """Wait until at least `count` API requests were answered (or dropped)."""
        await self._wait(lambda: len(self.received) >= count, timeout_s)
        return list(self.received)

    async def wait_for_callbacks(self, count: int, timeout_s: float = 5.0) -> list[CallbackRecord]:
        """Wait until at least `count` callback POSTs were attempted."""
        await self._wait(lambda: len(self.callbacks_sent) >= count, timeout_s)
        return list(self.callbacks_sent)

    async def _wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not done():
                await self._changed.wait()

    def _notify(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    # ---- the API -------------------------------------------------------------------------

    def _api_handler(
        self, endpoint: Endpoint
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, endpoint)

        return handle

    async def _handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        options = self.options
        started_at = time.time()
        if options.latency_s:
            await asyncio.sleep(options.latency_s)
        authorization = request.headers.get("Authorization")
        draft = Draft()
        headers: dict[str, str] = {}
        error: str | None = None
        try:
            check_auth(self.options, authorization)
            inject_failure(self.options, self._rng)
            if options.drop_connection_rate and self._rng.random() < options.drop_connection_rate:
                await drop(request)
                self._record(endpoint, authorization, draft, 0, "connection dropped", started_at)
                return web.Response(status=204)  # never reaches the client
            body = await answer(
                request, endpoint, draft, self.options, self._rng, self._callbacks.schedule
            )
            status = 200
        except Rejection as exc:
            status, error = exc.status, exc.msg
            body = error_body(options.envelope, exc.code, exc.msg)
            if status in options.retry_after_statuses and options.retry_after_s is not None:
                headers["Retry-After"] = f"{options.retry_after_s:g}"
        self._record(endpoint, authorization, draft, status, error, started_at)
        response = web.json_response(body, status=status, headers=headers)
        if not request.content.is_eof():
            await answer_early(request, response)
        return response

    def _record(
        self,
        endpoint: Endpoint,
        authorization: str | None,
        draft: Draft,
        status: int,
        error: str | None,
        started_at: float,
    ) -> None:
        self.received.append(
            ReceivedRequest(
                endpoint=endpoint.path,
                authorization=authorization,
                req=draft.req,
                file_name=draft.file_name,
                file_size=draft.file_size,
                file_sha256=draft.file_sha256,
                status=status,
                task_id=draft.task_id,
                received_at=time.time(),
                error=error,
                started_at=started_at,
                callback_fault=draft.callback_fault,
            )
        )
        self._notify()
        # The Authorization value is recorded for tests but never logged.
        log.info(
            "%s -> %d task=%s file=%s size=%s error=%s",
            endpoint.path,
            status,
            draft.task_id or "-",
            draft.file_name or "-",
            draft.file_size if draft.file_size is not None else "-",
            error or "-",
        )

    # ---- control endpoints, for tests that run the emulator in another process -----------

    async def _get_requests(self, request: web.Request) -> web.Response:
        # Whoever can reach this port must not learn the key: only whether one was sent.
        redacted = [
            {**dataclasses.asdict(item), "authorization": "***" if item.authorization else None}
            for item in self.received
        ]
        return web.json_response(redacted)

    async def _get_callbacks(self, request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(item) for item in self.callbacks_sent])

    async def _get_options(self, request: web.Request) -> web.Response:
        return web.json_response(_shown(self.options))

    async def _post_options(self, request: web.Request) -> web.Response:
        try:
            changes = await read_json_body(request)
            if not isinstance(changes, dict):
                raise bad_request("expected a JSON object of option fields")
            self.options.update(changes)
        except Rejection as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=400)
        except OptionError as exc:
            return web.json_response({"code": "1001", "msg": str(exc)}, status=400)
        log.info("options changed: %s", ", ".join(sorted(changes)))
        return web.json_response(_shown(self.options))

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.received.clear()
        self.callbacks_sent.clear()
        return web.json_response({"code": 0, "msg": "success"})


def _shown(options: EmulatorOptions) -> dict[str, Any]:
    """The options as the control endpoints show them: whoever reaches the port must not
    learn the key the emulator expects."""
    shown = options.to_json()
    if shown.get("api_key") is not None:
        shown["api_key"] = "***"
    return shown
