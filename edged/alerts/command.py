"""The command sink: runs a program per alert, with alert fields in its arguments.

No shell: argv is run as given, each "{person}"-style field replaced inside its own argument,
so a name with spaces or quotes stays one argument and cannot inject anything. The alert's
JSON is on the program's standard input. Exit 0 within `timeout` is a delivery; anything
else (non-zero exit, timeout, a program that cannot start) fails it, and it is retried.
The program gets a small environment (PATH, HOME, LANG, TZ), not edged's, which may hold
the API key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import string
from collections.abc import Mapping, Sequence
from typing import Any

from edged.alerts.base import DeliveryError, SimpleSink, SinkContext
from edged.alerts.model import Alert
from edged.alerts.snapshot_store import Snapshot, SnapshotStore
from edged.timeouts import within

SINK_TYPE = "command"
log = logging.getLogger(__name__)

_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_STDERR_SHOWN = 300  # characters of a failed program's stderr in the log and the outbox


def fill(argv: Sequence[str], fields: Mapping[str, object]) -> list[str]:
    """argv with each {field} replaced; the config check allows only known plain fields."""
    formatter = string.Formatter()
    return [formatter.vformat(arg, (), dict(fields)) for arg in argv]


def alert_fields(alert: Alert, snapshots: SnapshotStore | None) -> dict[str, object]:
    payload = alert.payload
    snapshot = Snapshot.from_json(payload.get("snapshot"))
    path = snapshots.path(snapshot.file) if snapshot is not None and snapshots else None
    clip = payload.get("clip") or {}
    return {
        "person": alert.person,
        "camera": alert.camera,
        "confidence": round(alert.confidence, 3),
        "clip": clip.get("path") or clip.get("file") or "",
        "snapshot": str(path) if path is not None and path.exists() else "",
        "alert_id": alert.alert_id,
        "time": payload.get("seen_at") or "",
        "instance": payload.get("instance") or "",
        "summary": payload.get("summary") or "",
    }


class CommandSink(SimpleSink):
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        timeout_s: float,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.name = name
        self._argv = tuple(argv)
        self._timeout_s = timeout_s
        self._snapshots = snapshots

    async def deliver(self, alert: Alert) -> None:
        fields = await asyncio.to_thread(alert_fields, alert, self._snapshots)
        argv = fill(self._argv, fields)
        env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # a signal to edged's terminal does not reach it
            )
        except OSError as exc:
            raise DeliveryError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        try:
            _, stderr = await within(
                process.communicate(alert.payload_json.encode()), self._timeout_s
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise DeliveryError(f"{argv[0]} did not finish in {self._timeout_s:g}s") from None
        except asyncio.CancelledError:
            # Shutdown: leave no program behind; the alert stays pending and runs again.
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            said = stderr.decode("utf-8", "replace").strip()[-_STDERR_SHOWN:]
            raise DeliveryError(f"{argv[0]} exited {process.returncode}: {said or '(no stderr)'}")
        log.debug("command done camera=%s clip=%s sink=%s", alert.camera, alert.clip_id, self.name)


def create(config: Any, name: str, context: SinkContext) -> CommandSink:
    return CommandSink(name, config.argv, config.timeout, context.snapshots)
