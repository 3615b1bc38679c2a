"""Deadlines and a connection cap for the public listener, which aiohttp does not give.

aiohttp waits for a request head as long as a client keeps the socket open, so a few
hundred half-sent requests would hold the box's file descriptors for good. Every
connection here is wrapped: outside a request handler it must complete a request head
within `head_timeout_s` of opening or of its last answer (which also bounds an idle
keep-alive and a slow reader of the answer); bodies are read under `body_timeout_s` by
the handler itself. One remote address holds at most `max_per_address` connections and
the listener `max_connections`. Past the first a new connection is refused; past the
second it pushes out the oldest connection not inside a handler of an address holding at
least as many as the newcomer's would, so whoever floods the listener, from one address or
hundreds, pushes out only connections like their own: never a request in progress, and
never keeps out the cloud's callback from an address that holds few.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 256
    max_per_address: int = 64


#: How many idle connections a newcomer at the cap looks through for one to push out.
MAX_SCAN = 4096

#: Called with the reason a connection was closed: "head_timeout", "evicted", "refused".
CloseHook = Callable[[str], None]


class _Refused(asyncio.Protocol):
    """Stands for aiohttp's protocol on a connection refused before it was made."""


class _Guarded(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol; the guard arms and disarms its deadline."""

    def __init__(self, guard: ConnectionGuard, make_inner: Callable[[], asyncio.Protocol]) -> None:
        self.inner: asyncio.Protocol = _Refused()
        self._make_inner = make_inner
        self.transport: asyncio.Transport | None = None
        self.busy = 0  # requests of this connection inside a handler
        self.address = "unknown"
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard.admit(self):
            transport.abort()  # before aiohttp spends anything on it
            return
        self.inner = self._make_inner()
        self.inner.connection_made(transport)
        self._guard.opened(self)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self._guard.closed(self)
        if not isinstance(self.inner, _Refused):
            self.inner.connection_lost(exc)

    def arm(self, after_s: float) -> None:
        self.disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(after_s, self._guard.expired, self)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class ConnectionGuard:
    """Wraps a listener's protocol factory; `middleware` tells it when a handler runs."""

    def __init__(self, limits: ListenerLimits, on_close: CloseHook | None = None) -> None:
        self.limits = limits
        self._on_close = on_close
        self._open: dict[int, _Guarded] = {}  # by id() of aiohttp's protocol
        self._idle: OrderedDict[int, _Guarded] = OrderedDict()  # not in a handler, oldest first
        self._count: Counter[str] = Counter()  # connections per remote address

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, inner)

    def admit(self, conn: _Guarded) -> bool:
        """Whether a new connection may stay, making room for it if that is fair. An address
        at its cap is refused. At the listener's cap, the newcomer pushes out the oldest idle
        connection of an address that holds at least as many as the newcomer's would: an
        address holding few (such as the cloud's) always gets in, one holding many can only
        push out its peers, and a request in a handler is never cut."""
        address = conn.address
        if self._count[address] >= self.limits.max_per_address:
            self._report("refused")
            return False
        if len(self._open) < self.limits.max_connections:
            return True
        need = self._count[address] + 1
        for scanned, victim in enumerate(self._idle.values()):
            if scanned >= MAX_SCAN:
                break
            if self._count[victim.address] >= need:
                self._report("evicted")
                victim.abort()
                self._forget(victim)
                return True
        self._report("refused")
        return False

    def opened(self, conn: _Guarded) -> None:
        key = id(conn.inner)
        self._open[key] = conn
        self._count[conn.address] += 1
        self._idle[key] = conn
        conn.arm(self.limits.head_timeout_s)

    def closed(self, conn: _Guarded) -> None:
        self._forget(conn)

    def _forget(self, conn: _Guarded) -> None:
        key = id(conn.inner)
        if self._open.get(key) is not conn:
            return
        del self._open[key]
        self._idle.pop(key, None)
        self._count[conn.address] -= 1
        if self._count[conn.address] <= 0:
            del self._count[conn.address]

    def expired(self, conn: _Guarded) -> None:
        if conn.busy:
            return
        self._report("head_timeout")
        conn.abort()

    def _report(self, reason: str) -> None:
        if self._on_close is not None:
            self._on_close(reason)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Any:
        key = id(request.protocol)
        conn = self._open.get(key)
        if conn is None:  # not a guarded connection (a test's own server)
            return await handler(request)
        conn.busy += 1
        conn.disarm()
        self._idle.pop(key, None)
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            if not conn.busy and self._open.get(key) is conn:
                self._idle[key] = conn
                conn.arm(self.limits.head_timeout_s)


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a `ConnectionGuard`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner, host, port)
        self._guard = guard

    async def start(self) -> None:
        runner_server = self._runner.server
        assert runner_server is not None
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.factory(runner_server), self._host, self._port, backlog=self._backlog
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]
