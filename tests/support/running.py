"""A real `edged run` in its own process, with a folder camera, for the attack batteries."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edged.ledger.store import Ledger
from edged.media.samples import make_clip
from tests.support.edged import start_edged
from tests.support.environment import free_port
from tests.support.waiting import eventually


@dataclass
class Edged:
    config: Path
    folder: Path
    process: asyncio.subprocess.Process
    ledger: Ledger
    port: int  # the public listener's
    metrics: str  # host:port of /healthz and /metrics
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def add_clip(self, name: str, *, title: str | None = "Alice") -> Path:
        """A recording written as `.part`, then renamed into place, as NVRs do."""
        part = self.folder / f"{name}.part"
        await asyncio.to_thread(make_clip, part, seconds=1.0, width=320, height=240, title=title)
        path = self.folder / name
        await asyncio.to_thread(os.rename, part, path)
        return path

    async def rows(self, sql: str, *params: object) -> list[dict[str, Any]]:
        return [dict(row) for row in await asyncio.to_thread(self.ledger.db.rows, sql, params)]

    async def dump(self) -> list[list[dict[str, Any]]]:
        """Every row of every table but the health probe's: what a request must not change."""
        tables = await self.rows("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1")
        dumped = []
        for table in tables:
            rows = await self.rows(f"SELECT * FROM {table['name']}")
            dumped.append([row for row in rows if row.get("key") != "health_probe"])
        return dumped

    async def until(
        self,
        check: Callable[[], Awaitable[bool]] | Callable[[], bool],
        what: str,
        timeout_s: float = 30.0,
    ) -> None:
        async def probe() -> bool:
            if self.process.returncode is not None:
                tail = "\n".join(self.stderr[-20:])
                pytest.fail(f"edged exited {self.process.returncode} waiting for {what}:\n{tail}")
            result = check()
            return bool(await result if inspect.isawaitable(result) else result)

        await eventually(probe, timeout_s=timeout_s, interval_s=0.1, what=what)

    async def clip_in(self, name: str, state: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The ledger's row of recording `name`, once it is in `state`."""
        found: dict[str, Any] = {}

        async def reached() -> bool:
            rows = await self.rows("SELECT * FROM clips WHERE path LIKE ?", f"%/{name}")
            found.update(rows[0] if rows else {})
            return found.get("state") == state

        await self.until(reached, f"{name} {state}", timeout_s)
        return found

    def logged(self, text: str) -> int:
        return sum(text in line for line in self.stderr)


def config_text(
    tmp_path: Path, api_url: str, *, port: int, metrics: str, api: str = "", callback: str = ""
) -> str:
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


@contextlib.asynccontextmanager
async def running_edged(
    tmp_path: Path,
    api_url: str,
    *,
    api: str = "",
    callback: str = "",
    text: str | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Edged]:
    """Start `edged run`, wait until it serves, yield; then SIGTERM and expect exit 0."""
    (tmp_path / "nvr").mkdir(exist_ok=True)
    port, metrics = free_port(), f"127.0.0.1:{free_port()}"
    config = tmp_path / "config.yaml"
    config.write_text(
        text
        or config_text(tmp_path, api_url, port=port, metrics=metrics, api=api, callback=callback)
    )
    process = await start_edged("run", "-c", str(config), env=env)
    ledger: Ledger | None = None
    box = Edged(config, tmp_path / "nvr", process, None, port, metrics)  # type: ignore[arg-type]

    async def read_stderr() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            box.stderr.append(line.decode(errors="replace").rstrip())

    async def drain_stdout() -> None:
        assert process.stdout is not None
        while await process.stdout.read(65536):
            pass

    readers = [asyncio.create_task(read_stderr()), asyncio.create_task(drain_stdout())]
    try:
        await box.until(lambda: box.logged("edged running") > 0, "edged to start serving")
        ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
        box.ledger = ledger
        yield box
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 40)
        await asyncio.gather(*readers)
        if ledger is not None:
            await asyncio.to_thread(ledger.close)
    assert code == 0, "\n".join(box.stderr[-20:])
