"""systemd's notify protocol: READY, WATCHDOG and STOPPING on $NOTIFY_SOCKET.

A datagram to a unix socket; when edged is not run by systemd (no $NOTIFY_SOCKET) every
call is a no-op. The watchdog ping is sent by `Watchdog.run()`, which pings only after a
health probe of the event loop and the ledger succeeds, so a wedged loop or a stuck SQLite
stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from edged.aio import within

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self._address = address
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_s = (
            int(usec) / 1_000_000 if usec.isascii() and usec.isdigit() and int(usec) > 0 else None
        )

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, state: str) -> None:
        if self._address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(state.encode(), self._address)
            except OSError as exc:  # systemd gone or socket full: nothing to do but say so
                log.warning("sd_notify %s failed: %s", state.split("=")[0], exc)

    def ready(self) -> None:
        self.send("READY=1\nSTATUS=running")

    def stopping(self) -> None:
        self.send("STOPPING=1")


class Watchdog:
    """Pings WATCHDOG=1 every half watchdog interval, after `healthy()` returns True in time."""

    def __init__(self, notifier: Notifier, healthy: Callable[[], Awaitable[bool]]) -> None:
        self._notifier = notifier
        self._healthy = healthy

    async def run(self) -> None:
        interval_s = self._notifier.watchdog_s
        if interval_s is None:
            await asyncio.Event().wait()  # no watchdog asked for: idle until cancelled
            return
        while True:
            try:
                ok = await within(self._healthy(), interval_s / 2)
            except TimeoutError:
                ok = False
            if ok:
                self._notifier.send("WATCHDOG=1")
            else:
                log.error("health check failed: not pinging the systemd watchdog")
            await asyncio.sleep(interval_s / 2)
