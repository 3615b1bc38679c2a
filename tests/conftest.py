"""Shared fixtures: the emulator over HTTP, real clips, configs and edged subprocesses."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from edged.emulator import Emulator, EmulatorOptions, run_emulator
from edged.samples import make_clip

EDGED = [sys.executable, "-m", "edged.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        f"api:\n  base_url: {api_url}\n  api_key: {api_key}\n{api_extra}"
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
