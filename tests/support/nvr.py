"""`edged run` in a subprocess with a folder camera, watched for its memory and its exit, for
the NVR fault battery; and which uploads the emulator accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pwd
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edged.emulator import Emulator
from tests.support.edged import EDGED
from tests.support.waiting import eventually


@dataclass
class Daemon:
    """`edged run` as a child process. Its log goes to a file (a pipe nobody reads would
    block it), and the ledger is read through a read-only SQLite connection."""

    config: Path
    process: asyncio.subprocess.Process
    log_path: Path
    ledger_path: Path

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, config: Path, *, user: str | None = None, graceful: bool = True
    ) -> AsyncIterator[Daemon]:
        """Stopped with SIGTERM at the end of the block, which must exit 0 (or SIGKILL, when
        not `graceful`). `user`: run as that unprivileged user (file permissions do not bind
        root)."""
        log_path = config.with_name("edged.log")
        state = config.parent / "state"
        prefix = []
        if user is not None:
            gid = pwd.getpwnam(user).pw_gid
            prefix = ["setpriv", f"--reuid={user}", f"--regid={gid}", "--clear-groups"]
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *prefix, *EDGED, "run", "-c", str(config), stdout=log, stderr=log
            )
        daemon = cls(config, process, log_path, state / "ledger.sqlite3")
        try:
            yield daemon
            daemon.check_alive("the end of the test")
            process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            code = await asyncio.wait_for(process.wait(), 40)
            assert code == (0 if graceful else -signal.SIGKILL), daemon.log()[-3000:]
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, *needles: str) -> list[str]:
        """Log lines that hold every one of `needles`."""
        return [line for line in self.log().splitlines() if all(n in line for n in needles)]

    def check_alive(self, what: str) -> None:
        if self.process.returncode is not None:
            tail = "\n".join(self.log().splitlines()[-30:])
            pytest.fail(f"edged exited {self.process.returncode} before {what}:\n{tail}")
        rss = self.rss_kib()
        if rss > MAX_RSS_KIB:
            self.process.kill()
            pytest.fail(f"edged grew to {rss // 1024} MB before {what}")

    def rss_kib(self) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):  # the peak, so no spike between polls is missed
                    return int(line.split()[1])
        return 0

    def has_open(self, path: Path) -> bool:
        """Whether edged holds `path` open (mid-upload), from /proc."""
        fds = Path(f"/proc/{self.process.pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == str(path):
                        return True
        return False

    async def until(
        self,
        check: Callable[[], Awaitable[bool]] | Callable[[], bool],
        what: str,
        timeout_s: float = 30.0,
    ) -> None:
        """`eventually`, failing at once (with edged's last log lines) if edged exits or
        outgrows its memory bound."""

        async def probe() -> bool:
            self.check_alive(what)
            result = check()
            return bool(await result if inspect.isawaitable(result) else result)

        await eventually(probe, timeout_s=timeout_s, interval_s=0.1, what=what)

    async def clips(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            if not self.ledger_path.exists():
                return []
            uri = f"file:{self.ledger_path}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
                conn.row_factory = sqlite3.Row
                try:
                    rows = conn.execute("SELECT * FROM clips ORDER BY id").fetchall()
                except sqlite3.OperationalError:
                    return []  # edged has not made its tables yet
            return [dict(row) for row in rows]

        return await asyncio.to_thread(read)

    async def by_name(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for clip in await self.clips():
            found.setdefault(Path(clip["path"]).name, []).append(clip)
        return found

    def states(self, wanted: dict[str, str]) -> Callable[[], Awaitable[bool]]:
        """Each named file has exactly one clip, in the given state."""

        async def check() -> bool:
            found = await self.by_name()
            return all(
                [c["state"] for c in found.get(name, [])] == [state]
                for name, state in wanted.items()
            )

        return check

    async def resume_uploads(self) -> None:
        """Give edged the key the emulator accepts (SIGHUP): paused uploads resume."""
        text = await asyncio.to_thread(self.config.read_text)
        await asyncio.to_thread(self.config.write_text, text.replace("wrong-key", RIGHT_KEY))
        self.process.send_signal(signal.SIGHUP)


def accepted(emulator: Emulator) -> Counter[str]:
    """SHA-256 of each file the emulator accepted, with how many times it was."""
    return Counter(
        r.file_sha256 for r in emulator.received if r.status == 200 and r.file_sha256 is not None
    )


def accepted_for(emulator: Emulator, clip_id: int) -> list[str | None]:
    marker = f"/callbacks/{clip_id}/"
    return [
        r.file_sha256
        for r in emulator.received
        if r.status == 200 and marker in str(r.req.get("callback", ""))
    ]


RIGHT_KEY = "right-key"


#: Peak memory that no fault may push edged past (it needs about 100 MB).
MAX_RSS_KIB = 600 * 1024
