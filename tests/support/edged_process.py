"""`edged run` in a subprocess: the one runner of the whole daemon as a process under test.

- `EdgedProcess.start(config, ...)` starts it; its output (stdout and stderr) goes to a log
  file of its own, never to a pipe (one nobody reads would block it).
- `running(config, ...)` is the block form: waits until edged serves, yields, then stops it
  with SIGTERM (or a given signal) and expects exit 0 (or a given code).
- the `edged_run` fixture is the factory form, for tests that stop and start edged again.

Whatever way a test ends (an assertion, a timeout, a cancellation), no `edged run` outlives
it: the block and the fixture kill what still runs, a wait that times out kills first, and
the child gets SIGKILL should this process die (the parent-death signal, set by setpriv).

The ledger is read through a read-only SQLite connection; a test that writes to it opens a
Ledger of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pwd
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from edged.ledger.connection import LEDGER_FILE
from edged.media.samples import make_clip
from tests.support.edged import EDGED
from tests.support.waiting import eventually

#: Peak memory that no test may push edged past (it needs about 100 MB).
MAX_RSS_KIB = 600 * 1024
#: How many of the log's last lines a failure shows.
TAIL_LINES = 30

Check = Callable[[], Awaitable[Any]] | Callable[[], Any]


class EdgedProcess:
    """A running (or exited) `edged run` child process, its log and its ledger."""

    def __init__(
        self, config: Path, process: asyncio.subprocess.Process, log_path: Path, max_rss_kib: int
    ) -> None:
        self.config = config
        self.process = process
        self.log_path = log_path
        self.max_rss_kib = max_rss_kib
        self._settings: dict[str, Any] | None = None
        self.stopped = False  # by `stop`: its exit code is the caller's to check

    @classmethod
    async def start(
        cls,
        config: Path,
        *,
        options: Sequence[str] = (),
        env: dict[str, str] | None = None,
        user: str | None = None,
        wrapper: Sequence[str] = (),
        max_rss_kib: int = MAX_RSS_KIB,
    ) -> EdgedProcess:
        """`edged <options> run -c <config>`, with `env` added to this process's; `user`: as
        that unprivileged user (file permissions do not bind root); `wrapper`: a command that
        ends by exec'ing its arguments (`sh -c 'umask 022 && exec "$@"' sh`), so the process
        is still edged."""
        prefix = ["setpriv", "--pdeathsig=SIGKILL"]
        if user is not None:
            gid = pwd.getpwnam(user).pw_gid
            prefix += [f"--reuid={user}", f"--regid={gid}", "--clear-groups"]
        log_path = _new_log(config)
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *prefix,
                "--",
                *wrapper,
                *EDGED,
                *options,
                "run",
                "-c",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **(env or {})},
            )
        return cls(config, process, log_path, max_rss_kib)

    # ---- the process ----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout_s: float = 40.0) -> int:
        """Its exit code, once it exits; killed, and the test failed, if it does not in time."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            await self.kill()
            pytest.fail(f"edged did not exit within {timeout_s}s:\n{self.tail()}")

    async def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 40.0) -> int:
        """Send `signum` (if it still runs) and return its exit code (see `wait`)."""
        self.stopped = True
        if self.process.returncode is None:
            self.process.send_signal(signum)
        return await self.wait(timeout_s)

    async def kill(self) -> None:
        """SIGKILL, if it still runs, and reap it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()

    def rss_kib(self) -> int:
        """Its peak resident memory so far (so no spike between polls is missed)."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def check_alive(self, what: str) -> None:
        """Fail (with the log's tail) if edged has exited, or (killing it) if it has grown
        past its memory bound."""
        if self.process.returncode is not None:
            pytest.fail(f"edged exited {self.process.returncode} before {what}:\n{self.tail()}")
        rss = self.rss_kib()
        if rss > self.max_rss_kib:
            self.process.kill()
            pytest.fail(f"edged grew to {rss // 1024} MB before {what}:\n{self.tail()}")

    def has_open(self, path: Path) -> bool:
        """Whether edged holds `path` open (mid-upload), from /proc."""
        fds = Path(f"/proc/{self.process.pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == str(path):
                        return True
        return False

    async def until(self, check: Check, what: str, timeout_s: float = 30.0) -> None:
        """`eventually`, failing at once (with the log's tail) if edged exits or outgrows its
        memory bound, and with the log's tail at the deadline."""

        async def probe() -> bool:
            self.check_alive(what)
            result = check()
            return bool(await result if inspect.isawaitable(result) else result)

        try:
            await eventually(probe, timeout_s=timeout_s, interval_s=0.1, what=what)
        except pytest.fail.Exception as failed:
            if not str(failed).startswith("timed out"):
                raise  # check_alive's, which shows the tail already
            pytest.fail(f"{failed}:\n{self.tail()}")

    async def serving(self, timeout_s: float = 30.0) -> None:
        await self.until(
            lambda: self.logged("edged running") > 0, "edged to start serving", timeout_s
        )

    # ---- its log --------------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, *needles: str) -> list[str]:
        """Its log lines that hold every one of `needles` (all of them, with none)."""
        return [line for line in self.log().splitlines() if all(n in line for n in needles)]

    def logged(self, text: str) -> int:
        """How many of its log lines hold `text`."""
        return len(self.lines(text))

    def tail(self, count: int = TAIL_LINES) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log().splitlines()[-count:])
        return "(no log)"

    # ---- its config -----------------------------------------------------------------------

    @property
    def settings(self) -> dict[str, Any]:
        """The config file as YAML (read once)."""
        if self._settings is None:
            self._settings = yaml.safe_load(self.config.read_text())
        return self._settings

    @property
    def port(self) -> int:
        """The public (callback) listener's port."""
        return int(str(self.settings["callback"]["listen"]).rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics(self) -> str:
        """host:port of /healthz and /metrics."""
        return str(self.settings["metrics"]["listen"])

    @property
    def folder(self) -> Path:
        """The first camera's folder."""
        return Path(self.settings["cameras"][0]["folder"])

    @property
    def ledger_path(self) -> Path:
        return Path(self.settings["storage"]["dir"]) / LEDGER_FILE

    async def add_clip(self, name: str, *, title: str | None = "Alice") -> Path:
        """A recording in the first camera's folder, written as `.part`, then renamed into
        place, as NVRs do."""
        part = self.folder / f"{name}.part"
        await asyncio.to_thread(make_clip, part, seconds=1.0, width=320, height=240, title=title)
        path = self.folder / name
        await asyncio.to_thread(os.rename, part, path)
        return path

    # ---- its ledger, read only ------------------------------------------------------------

    async def rows(self, sql: str, *params: object) -> list[dict[str, Any]]:
        """The rows of a query on the ledger, through a read-only connection."""
        return await asyncio.to_thread(self._read, sql, params)

    def _read(self, sql: str, params: Sequence[object]) -> list[dict[str, Any]]:
        uri = f"file:{self.ledger_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, tuple(params)).fetchall()]

    async def table(self, name: str) -> list[dict[str, Any]]:
        """Every row of table `name`, in the order written; none until edged has made it."""
        if not await asyncio.to_thread(self.ledger_path.exists):
            return []
        try:
            return await self.rows(f"SELECT * FROM {name} ORDER BY rowid")
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []  # the file is there, edged is still making its tables
            raise

    async def clips(self) -> list[dict[str, Any]]:
        """Every clip, in the order found (see `table`)."""
        return await self.table("clips")

    async def clip_in(self, name: str, state: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The ledger's row of recording `name`, once it is in `state`."""
        found: dict[str, Any] = {}

        async def reached() -> bool:
            rows = await self.rows("SELECT * FROM clips WHERE path LIKE ?", f"%/{name}")
            found.update(rows[0] if rows else {})
            return found.get("state") == state

        await self.until(reached, f"{name} {state}", timeout_s)
        return found

    async def dump(self) -> list[list[dict[str, Any]]]:
        """Every row of every table but the health probe's: what a request must not change."""
        tables = await self.rows("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1")
        dumped = []
        for table in tables:
            rows = await self.rows(f"SELECT * FROM {table['name']}")
            dumped.append([row for row in rows if row.get("key") != "health_probe"])
        return dumped


#: The `edged_run` fixture: `await edged_run(config, **start)`.
StartEdged = Callable[..., Awaitable[EdgedProcess]]


def _new_log(config: Path) -> Path:
    """`edged.log` beside the config, or `edged-2.log`, … for a later start: one per run."""
    path, number = config.with_name("edged.log"), 1
    while path.exists():
        number += 1
        path = config.with_name(f"edged-{number}.log")
    return path


@contextlib.asynccontextmanager
async def running(
    config: Path,
    *,
    serving: bool = True,
    stop: int = signal.SIGTERM,
    expect: int | None = None,
    options: Sequence[str] = (),
    env: dict[str, str] | None = None,
    user: str | None = None,
    wrapper: Sequence[str] = (),
    max_rss_kib: int = MAX_RSS_KIB,
) -> AsyncIterator[EdgedProcess]:
    """`edged run` for the block: once it serves (unless not `serving`); after the block it
    must still run, and exit `expect` (0, or -signal for SIGKILL) on `stop`, unless the block
    stopped it itself (`EdgedProcess.stop`). Killed whatever way the block ends."""
    edged = await EdgedProcess.start(
        config, options=options, env=env, user=user, wrapper=wrapper, max_rss_kib=max_rss_kib
    )
    try:
        if serving:
            await edged.serving()
        yield edged
        if edged.stopped:
            return
        edged.check_alive("the end of the test")
        code = await edged.stop(stop)
        wanted = expect if expect is not None else (-stop if stop == signal.SIGKILL else 0)
        assert code == wanted, f"edged exited {code}, not {wanted}:\n{edged.tail()}"
    finally:
        await edged.kill()


@pytest.fixture
async def edged_run() -> AsyncIterator[StartEdged]:
    """`await edged_run(config, **start)`: `EdgedProcess.start`, each one killed (if it still
    runs) when the test ends."""
    started: list[EdgedProcess] = []

    async def start(config: Path, **options: Any) -> EdgedProcess:
        edged = await EdgedProcess.start(config, **options)
        started.append(edged)
        return edged

    yield start
    for edged in started:
        await edged.kill()
