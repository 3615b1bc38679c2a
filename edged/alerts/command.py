"""The command sink: runs a program per alert, with alert fields in its arguments.

No shell: argv is run as given, each "{person}"-style field replaced inside its own argument,
so a name with spaces or quotes stays one argument and cannot inject anything. Field values
come from outside (the API's summary, person and camera names), so they are cleaned first:

- control characters (NUL, ESC, CR, LF, DEL, C1, bidi overrides) are removed;
- a value that would begin an argument and starts with `-` gets a leading space (`" -rf"`),
  so that no option parser reads it as an option; after a literal `--` in argv (where the
  program's parser stops reading options) values are passed as they are.

The alert's JSON is on the program's standard input. The outcome is decided when the program
exits: exit 0 within `timeout` is one delivery, even if a child it left in the background
still holds its stderr (read for a short grace period after the exit); anything else (non-zero
exit, timeout, a program that cannot start) fails it, and it is retried. The program runs in a
session and process group of its own; at the timeout, or when edged stops, the whole group is
killed, so no orphan outlives a try. The program gets a small environment (PATH, HOME, LANG,
TZ), not edged's, which may hold the API key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import string
from collections.abc import Mapping, Sequence

from edged.aio import within
from edged.alerts.base import DeliveryError, SimpleSink, SinkContext
from edged.config.sinks import CommandSinkConfig
from edged.ledger.outbox import Alert
from edged.logs import CONTROL_CODES
from edged.media.snapshot_store import SnapshotStore

SINK_TYPE = "command"
log = logging.getLogger(__name__)

_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_STDERR_SHOWN = 300  # characters of a failed program's stderr in the log and the outbox
_STDERR_KEPT = 64 * 1024  # bytes of stderr read at most (its tail is what is shown)
#: After the program exits: how long its stderr may take to reach its end (a child left in
#: the background may hold it open for good).
STDERR_GRACE_S = 0.5
_REMOVED = dict.fromkeys(CONTROL_CODES)


def clean_value(value: object) -> str:
    """A field's text with every control character removed."""
    return str(value).translate(_REMOVED)


def fill(argv: Sequence[str], fields: Mapping[str, object]) -> list[str]:
    """argv with each {field} replaced (see the module's doc); the config check allows only
    known plain fields."""
    formatter = string.Formatter()
    values = {key: clean_value(value) for key, value in fields.items()}
    filled, options_end = [], False
    for arg in argv:
        result = formatter.vformat(arg, (), values)
        parts = list(formatter.parse(arg))
        starts_with_field = bool(parts) and parts[0][0] == "" and parts[0][1] is not None
        if not options_end and starts_with_field and result.startswith("-"):
            result = " " + result
        options_end = options_end or arg == "--"
        filled.append(result)
    return filled


def alert_fields(alert: Alert, snapshots: SnapshotStore | None) -> dict[str, object]:
    body = alert.body
    snapshot, clip = body.snapshot, body.clip
    path = snapshots.path(snapshot.file) if snapshot is not None and snapshots else None
    return {
        "person": alert.person,
        "camera": alert.camera,
        "confidence": round(alert.confidence, 3),
        "clip": (clip.path or clip.file) if clip is not None else "",
        "snapshot": str(path) if path is not None and path.exists() else "",
        "alert_id": alert.alert_id,
        "time": body.seen_at or "",
        "instance": body.instance or "",
        "summary": body.summary,
        "title": body.title or "",
        "threat_level": "" if body.threat_level is None else str(body.threat_level),
    }


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its own group: start_new_session


def _stdin_file(data: bytes) -> int:
    """Blocking: a file descriptor that reads `data`, then EOF: the program may read it or
    not, at its pace, and nothing on edged's side waits for it (nor for a child holding it)."""
    fd = os.memfd_create("edged-alert", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Stderr:
    """The program's stderr on a pipe of edged's own (so that asyncio waits only for the
    program's exit, not for the pipe's end), its last bytes kept."""

    def __init__(self) -> None:
        self._read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        self.kept = bytearray()
        self._reader = asyncio.StreamReader()
        self._transport: asyncio.ReadTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(self._read_fd, "rb", buffering=0)
        protocol = asyncio.StreamReaderProtocol(self._reader)
        self._transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)

    async def read_all(self) -> None:
        while chunk := await self._reader.read(8192):
            self.kept += chunk
            del self.kept[:-_STDERR_KEPT]

    def handed_over(self) -> None:
        """The program holds the write end now: edged's copy goes, so EOF comes with it."""
        os.close(self.write_fd)
        self.write_fd = -1

    def close(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1
        if self._transport is not None:
            self._transport.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self._read_fd)


class CommandSink(SimpleSink):
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        timeout_s: float,
        snapshots: SnapshotStore | None = None,
        *,
        stderr_grace_s: float = STDERR_GRACE_S,
    ) -> None:
        self.name = name
        self._argv = tuple(argv)
        self._timeout_s = timeout_s
        self._snapshots = snapshots
        self._grace_s = stderr_grace_s

    async def deliver(self, alert: Alert) -> None:
        fields = await asyncio.to_thread(alert_fields, alert, self._snapshots)
        argv = fill(self._argv, fields)
        stdin = await asyncio.to_thread(_stdin_file, alert.payload_json.encode())
        stderr = _Stderr()
        try:
            await stderr.start()
            code = await self._run(argv, stdin, stderr)
        finally:
            os.close(stdin)
            stderr.close()
        if code != 0:
            said = stderr.kept.decode("utf-8", "replace").strip()[-_STDERR_SHOWN:]
            raise DeliveryError(f"{argv[0]} exited {code}: {said or '(no stderr)'}")
        log.debug("command done camera=%s clip=%s sink=%s", alert.camera, alert.clip_id, self.name)

    async def _run(self, argv: list[str], stdin: int, stderr: _Stderr) -> int:
        """The program's exit code; its stderr read until it ends or a grace period after
        the exit has passed."""
        env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdin,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr.write_fd,
                env=env,
                start_new_session=True,  # its own group, killed whole; edged's signals stay here
            )
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise DeliveryError(f"cannot run {argv[0]}: {reason}") from exc
        stderr.handed_over()
        reader = asyncio.create_task(stderr.read_all(), name=f"{self.name}-stderr")
        try:
            code = await within(process.wait(), self._timeout_s)
            # Exited: its stderr ends now, or never (a child left in the background holds it).
            with contextlib.suppress(TimeoutError):
                await within(asyncio.shield(reader), self._grace_s)
            return code
        except TimeoutError:
            _kill_group(process)
            await process.wait()
            raise DeliveryError(f"{argv[0]} did not finish in {self._timeout_s:g}s") from None
        except asyncio.CancelledError:
            # Shutdown: leave no program behind; the alert stays pending and runs again.
            _kill_group(process)
            await process.wait()
            raise
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


def create(config: CommandSinkConfig, name: str, context: SinkContext) -> CommandSink:
    return CommandSink(name, config.argv, config.timeout, context.snapshots)
