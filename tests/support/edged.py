"""edged under test: its command line, configs for a test, one-shot `edged` commands in a
subprocess (`run_edged`), and `edged run` in this process (`edged_running`); `edged run` in a
subprocess is tests/support/edged_process.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from edged.config.model import parse_config
from edged.emulator import Emulator
from edged.service.daemon import run_daemon
from tests.support.environment import free_port
from tests.support.waiting import eventually
from tests.support.webhook import SECRET

EDGED = [sys.executable, "-m", "edged.cli"]


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
    """A one-shot command (`edged status`, …): its exit code, stdout and stderr; killed if it
    does not end within `timeout_s`."""
    process = await start_edged(*args)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
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


INSTANCE = "test-box"


def daemon_config(
    tmp_path: Path,
    api_url: str,
    hook_url: str,
    *,
    max_attempts: int = 3,
    result_timeout: str = "2s",
    cooldown: str = "0s",
) -> Path:
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api:\n  base_url: {api_url}\n  api_key: test-key\n  max_attempts: {max_attempts}\n"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        f"  result_timeout: {result_timeout}\n"
        "persons:\n"
        "  - name: Alice\n    url: https://example.com/alice.jpg\n"
        "  - name: Bob\n    url: https://example.com/bob.jpg\n"
        f"storage:\n  dir: {tmp_path / 'state'}\n"
        f"alerts:\n  cooldown: {cooldown}\n  sinks:\n"
        f"    - type: webhook\n      url: {hook_url}\n      secret: {SECRET}\n"
        "    - type: log\n"
        f"instance: {INSTANCE}\n"
        f"metrics:\n  listen: 127.0.0.1:{free_port()}\n"
    )
    return path


@asynccontextmanager
async def edged_running(config_path: Path) -> AsyncIterator[asyncio.Task[int]]:
    """`edged run` in this process: serving once the block starts, stopped (exit 0) after it."""
    config = parse_config(await asyncio.to_thread(config_path.read_text))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_daemon(config, shutdown=stop, on_ready=lambda _port: ready.set()), name="edged"
    )
    started = asyncio.create_task(ready.wait())
    # As long as EdgedProcess gives a start: beside a CPU hog, 15 s was close.
    await asyncio.wait({task, started}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        pytest.fail(f"edged stopped while starting: {task.result()!r}")
    assert ready.is_set(), "edged did not start serving"
    try:
        yield task
    finally:
        stop.set()
        code = await asyncio.wait_for(task, 30)
    assert code == 0


def hostile_config(
    tmp_path: Path, api_url: str, names: tuple[str, ...], *, sinks: str = "    - type: log\n"
) -> tuple[Path, int]:
    """A config with these persons and sinks; returns it and its metrics port."""
    callback, metrics = free_port(), free_port()
    persons = "".join(
        f"  - {{name: {json.dumps(name)}, url: https://example.com/{index}.jpg}}\n"
        for index, name in enumerate(names)
    )
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api: {{base_url: {api_url}, api_key: test-key}}\n"
        f"callback: {{listen: 127.0.0.1:{callback}, public_url: http://127.0.0.1:{callback}}}\n"
        f"persons:\n{persons}"
        f"storage: {{dir: {tmp_path / 'state'}}}\n"
        f"alerts:\n  cooldown: 0s\n  sinks:\n{sinks}"
        f"metrics: {{listen: 127.0.0.1:{metrics}}}\n"
        "instance: test-box\n",
        encoding="utf-8",
    )
    return path, metrics


def config_text(
    tmp_path: Path, api_url: str, *, port: int, metrics: str, api: str = "", callback: str = ""
) -> str:
    """A folder camera (`gate`, on tmp_path/nvr), Alice, the log sink: the attack batteries'."""
    folder = tmp_path / "nvr"
    callback = callback or "  result_timeout: 30s\n"
    return (
        f"api:\n  base_url: {api_url}\n  api_key: test-key\n  max_attempts: 3\n"
        f"  shutdown_grace: 3s\n{api}"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        f"{callback}"
        "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
        f"cameras:\n  - name: gate\n    folder: {folder}\n    pattern: '*.mp4'\n    settle: 1s\n"
        f"storage:\n  dir: {tmp_path / 'state'}\n"
        "alerts:\n  cooldown: 0s\n  sinks:\n    - type: log\n"
        f"metrics:\n  listen: {metrics}\n"
    )


def folder_config(
    tmp_path: Path, api_url: str, *, api: str = "", callback: str = "", text: str | None = None
) -> Path:
    """tmp_path/config.yaml: `text`, or `config_text` on free ports; and its camera's folder."""
    (tmp_path / "nvr").mkdir(exist_ok=True)
    port, metrics = free_port(), f"127.0.0.1:{free_port()}"
    config = tmp_path / "config.yaml"
    config.write_text(
        text
        or config_text(tmp_path, api_url, port=port, metrics=metrics, api=api, callback=callback)
    )
    return config
