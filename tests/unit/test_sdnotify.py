"""The notify protocol on a datagram socket the test owns, and the watchdog that pings only
while the event loop (and whatever `healthy` probes) runs."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.service.sdnotify import Notifier, Watchdog


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A datagram socket standing for systemd's, and the environment that points to it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        yield sock, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_s is None
    notifier.ready()  # a no-op, not an error


def test_ready_and_stopping(notify: tuple[socket.socket, dict[str, str]]) -> None:
    sock, env = notify
    notifier = Notifier(env)
    notifier.ready()
    notifier.stopping()
    states = received(sock)
    assert states[0].startswith("READY=1") and states[1] == "STOPPING=1"
    assert notifier.watchdog_s == 0.4


async def test_watchdog_pings_stop_while_the_loop_is_blocked(
    notify: tuple[socket.socket, dict[str, str]],
) -> None:
    sock, env = notify
    three_probes = asyncio.Event()
    probes = 0

    async def healthy() -> bool:
        nonlocal probes
        probes += 1
        if probes >= 3:
            three_probes.set()
        return True

    task = asyncio.create_task(Watchdog(Notifier(env), healthy).run())
    await asyncio.wait_for(three_probes.wait(), 10)
    assert received(sock)[:2] == ["WATCHDOG=1", "WATCHDOG=1"]
    # Block the event loop on purpose, for several ping intervals: a watchdog driven by a
    # thread would go on pinging; this one must not. Read before the loop runs again.
    time.sleep(1.0)  # noqa: ASYNC251
    during_block = received(sock)
    task.cancel()
    assert during_block == []


async def test_watchdog_does_not_ping_when_the_probe_hangs(
    notify: tuple[socket.socket, dict[str, str]],
) -> None:
    sock, env = notify
    three_probes = asyncio.Event()
    probes = 0

    async def stuck() -> bool:
        nonlocal probes
        probes += 1
        if probes >= 3:
            three_probes.set()
        await asyncio.Event().wait()  # e.g. the ledger's thread is wedged
        return True

    task = asyncio.create_task(Watchdog(Notifier(env), stuck).run())
    await asyncio.wait_for(three_probes.wait(), 10)
    task.cancel()
    assert received(sock) == []
