"""The callback listener's sockets: `CallbackApp` served with the deadlines and the
connection cap of its limits (edged/results/listener_guard.py), until the block ends."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from aiohttp import web

from edged.aio import serving
from edged.results.listener import CallbackApp
from edged.results.listener_guard import ConnectionGuard, GuardedSite

log = logging.getLogger(__name__)


class CallbackServer:
    """`async with CallbackServer(callbacks, host, port):` serves until the block ends, with
    the deadlines and the connection cap of `callbacks.limits`."""

    def __init__(
        self,
        callbacks: CallbackApp,
        host: str,
        port: int,
        *,
        on_close: Callable[[str], None] | None = None,
    ) -> None:
        self.guard = ConnectionGuard(callbacks.limits, on_close or _ClosedLog())
        self._app = callbacks.app(self.guard)
        self._keepalive_s = callbacks.limits.head_timeout_s
        self._host = host
        self._port = port
        self.port = port
        self._serving = contextlib.AsyncExitStack()

    async def __aenter__(self) -> CallbackServer:
        def site(runner: web.AppRunner, host: str, port: int) -> GuardedSite:
            return GuardedSite(runner, host, port, self.guard)

        runner = await self._serving.enter_async_context(
            serving(
                self._app,
                self._host,
                self._port,
                shutdown_timeout_s=5.0,
                site=site,
                # aiohttp's own idle timer only after an answer; the guard bounds the rest.
                keepalive_timeout=self._keepalive_s,
            )
        )
        sockets = runner.addresses
        if sockets:
            self.port = sockets[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._serving.aclose()


class _ClosedLog:
    """At most a line a minute: a flood of slow clients must not become a flood of lines."""

    def __init__(self) -> None:
        self._last = -60.0

    def __call__(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last >= 60:
            self._last = now
            log.warning("callback listener closed a connection: %s", reason)
