"""Shared fixtures: the emulator over HTTP, real clips, configs and edged subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edged.emulator import Emulator, EmulatorOptions, run_emulator
from edged.media.samples import make_clip

EDGED = [sys.executable, "-m", "edged.cli"]


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


#: Test modules outside tests/battery/ marked slow as a whole: real RTSP cameras (GStreamer
#: servers recording clips of seconds), kill loops, live quotas and scrapes.
SLOW_MODULES = frozenset(
    {
        "test_rtsp.py",
        "test_rtsp_crash.py",
        "test_rtsp_faults.py",
        "test_metrics_live.py",
        "test_storage.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` on the fault battery and on SLOW_MODULES: `pytest -m "not slow"` is the fast
    part (unit tests and the quicker integration tests)."""
    for item in items:
        path = item.path
        if path.parent.name == "battery" or path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def _ports_of_this_worker() -> Iterator[int]:
    """Candidate ports below the kernel's ephemeral range, so that no connection's source
    port and no `bind(0)` can take one between this pick and the bind of the program under
    test; under pytest-xdist each worker draws from its own residue class, so two workers
    never hand out the same port."""
    ephemeral_low = 32768
    with contextlib.suppress(OSError, ValueError):
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    low = 10_000 + worker
    ports = list(range(low, max(low + workers, ephemeral_low), workers))
    random.shuffle(ports)
    while True:  # each port once per round, so one test's ports differ from each other
        yield from ports


_PORTS = _ports_of_this_worker()


def free_port() -> int:
    """A localhost TCP port nothing listens on now, for a server a test is about to start."""
    for port in _PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("unreachable: the port cycle never ends")


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `check` until true; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with run_emulator(
        EmulatorOptions(callback_delay_s=0.05, callback_retry_delay_s=0.2), seed=1
    ) as emu:
        yield emu


@pytest.fixture
def clip_factory(tmp_path: Path) -> Callable[..., Awaitable[Path]]:
    async def make(
        name: str = "clip.mp4",
        *,
        title: str | None = None,
        seconds: float = 1.0,
        folder: Path | None = None,
    ) -> Path:
        path = (folder or tmp_path / "clips") / name
        return await asyncio.to_thread(make_clip, path, seconds=seconds, title=title)

    return make


def write_config(
    tmp_path: Path,
    api_url: str,
    *,
    api_key: str = "test-key",
    callback_port: int | None = None,
    extra: str = "",
    api_extra: str = "",
) -> Path:
    port = callback_port or free_port()
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api:\n  base_url: {api_url}\n  api_key: {api_key}\n  shutdown_grace: 5s\n{api_extra}"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        f"storage:\n  dir: {tmp_path / 'state'}\n"
        f"metrics:\n  listen: 127.0.0.1:{free_port()}\n{extra}"
    )
    return path


async def start_edged(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *EDGED,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


async def run_edged(*args: str, timeout_s: float = 60.0) -> tuple[int, str, str]:
    process = await start_edged(*args)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@contextlib.asynccontextmanager
async def callbacks_held(
    emulator: Emulator, ready: Callable[[Any], Awaitable[bool]], *, timeout_s: float = 60.0
) -> AsyncIterator[None]:
    """Each callback the emulator schedules waits until `ready(delivery)` (a condition on
    edged's side, e.g. the upload's task id committed), then goes out after its own delay
    counted from there: "after edged recorded the task id" holds however slow the machine."""
    sender = emulator._callbacks
    original = sender._deliver

    async def deliver(delivery: Any) -> None:
        await eventually(
            lambda: ready(delivery), timeout_s=timeout_s, what=f"{delivery.task_id} ready"
        )
        await original(delivery)

    sender._deliver = deliver  # type: ignore[method-assign]
    try:
        yield
    finally:
        sender._deliver = original  # type: ignore[method-assign]


def clip_id_of(delivery: Any) -> int:
    """The clip id in a delivery's callback URL (…/callbacks/<id>/<token>)."""
    return int(str(delivery.url).split("/callbacks/")[1].split("/")[0])
