"""A real mosquitto broker (`broker`, `Mosquitto`) and a watcher of its topics; the
`mosquitto_installed` fixture skips without mosquitto on a workstation and fails under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.support.environment import free_port, require_program
from tests.support.waiting import eventually

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


WATCHER = ("watcher", "watcher-pass")


PREFIX = "edged-test"


@pytest.fixture
def mosquitto_installed() -> None:
    """Skipped without mosquitto on a workstation; under CI=true, failed."""
    require_program("mosquitto", fallback="/usr/sbin/mosquitto")


class Mosquitto:
    """mosquitto on 127.0.0.1:port with a temporary config, no persistence. Anonymous clients
    are allowed unless `start(anonymous=False)`; the watcher always logs in with a password."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *, anonymous: bool = True) -> None:
        await self._write_config(anonymous)
        with (self.folder / "mosquitto.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                MOSQUITTO, "-c", str(self.folder / "mosquitto.conf"), stdout=log, stderr=log
            )

        async def listening() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                pytest.fail(f"mosquitto exited: {(self.folder / 'mosquitto.log').read_text()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await eventually(listening, timeout_s=10, what="mosquitto listening")

    async def kill(self) -> None:
        """SIGKILL: no goodbye to anyone, as when the broker's box loses power."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def allow_anonymous(self) -> None:
        """Let anonymous clients (edged) in again, without a restart (SIGHUP reloads)."""
        await self._write_config(anonymous=True)
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    async def _write_config(self, anonymous: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        passwords = self.folder / "passwords"
        if not passwords.exists():
            passwords.write_text("")
            tool = await asyncio.create_subprocess_exec(
                "mosquitto_passwd", "-b", str(passwords), *WATCHER
            )
            assert await tool.wait() == 0
        (self.folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            f"password_file {passwords}\n"
            "persistence false\n"
            # As root mosquitto would switch to its own user and then fail to re-read these
            # files on SIGHUP; as anyone else this line changes nothing.
            f"user {getpass.getuser()}\n"
        )


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """A client subscribed to `#` that records every message; `run()` ends when its
    connection does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[Seen] = []
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(
            "127.0.0.1", self.port, username=WATCHER[0], password=WATCHER[1]
        ) as client:
            await client.subscribe("#", qos=1)
            self.subscribed.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                self.seen.append(Seen(str(message.topic), payload, message.retain))

    def on(self, topic: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.topic == topic]

    def last(self, topic: str) -> Seen | None:
        found = self.on(topic)
        return found[-1] if found else None


@contextlib.asynccontextmanager
async def watching(port: int) -> AsyncIterator[Watcher]:
    watcher = Watcher(port)
    task = asyncio.create_task(watcher.run(), name="watcher")
    try:
        await eventually(
            lambda: watcher.subscribed.is_set() or task.done(), timeout_s=10, what="subscribed"
        )
        if task.done():
            task.result()  # raises what stopped it
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "mosquitto")
    await mosquitto.start()
    try:
        yield mosquitto
    finally:
        if mosquitto.process is not None and mosquitto.process.returncode is None:
            mosquitto.process.kill()
            await mosquitto.process.wait()
