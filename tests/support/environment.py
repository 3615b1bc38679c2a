"""The machine under the tests: free ports, the system programs a test needs (skipped on a
workstation, failed under CI=true), and whether this is CI.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
from pathlib import Path

import pytest


def in_ci() -> bool:
    """`CI=true` (as CI services set it): what the suite needs must be there."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """A system program or capability a test needs is not here: skip on a workstation,
    fail under CI=true, where a skip would hide that the test never ran."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing requirement fails, see .ci/apt-packages.txt)")
    pytest.skip(reason)


def require_program(name: str, *, fallback: str | None = None) -> str:
    """The path of system program `name` (or `fallback` when it exists); else `missing`."""
    found = shutil.which(name) or (fallback if fallback and Path(fallback).exists() else None)
    if found is None:
        missing(f"{name} is not installed")
        raise AssertionError("unreachable")  # pytest.skip and pytest.fail raise
    return found


def _ports_of_this_worker() -> list[int]:
    """Candidate ports outside the kernel's ephemeral range, so that no connection's source
    port and no `bind(0)` can take one between this pick and the bind of the program under
    test; under pytest-xdist each worker draws from its own residue class (a worker started
    again after a crash has a higher number: taken modulo the count), so two workers never
    hand out the same port."""
    ephemeral = (32768, 60999)
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
        ephemeral = (int(low), int(high))
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % workers
    ours = range(10_000 + worker, 65_536, workers)
    ports = [port for port in ours if not ephemeral[0] <= port <= ephemeral[1]]
    if len(ports) < 1_000:  # a box whose ephemeral range is nearly everything: take any port
        ports = list(ours)
    random.shuffle(ports)
    return ports


_PORTS = _ports_of_this_worker()
_next = 0


def free_port() -> int:
    """A localhost TCP port nothing listens on now, for a server a test is about to start.
    Each port of this worker's share is handed out once per round, so one test's ports differ."""
    global _next
    for _ in range(len(_PORTS)):
        port = _PORTS[_next % len(_PORTS)]
        _next += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port among the {len(_PORTS)} of this test worker")
