"""NVR folder source: finished recordings under a folder become clips in the ledger.

A file is finished when it opens as a complete video with PyAV and either was just
closed after writing (inotify), was just renamed into place, or has not changed for
`settle` seconds. edged only reads here: it never writes, moves or deletes NVR files.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from edged.clip import NewClip
from edged.config import CameraConfig
from edged.ledger_async import AsyncLedger
from edged.probe import ClipRejected, probe_video

log = logging.getLogger(__name__)

#: Generous limits for finding out whether a file is complete; the uploader applies the
#: configured API limits later and fails the clip with a clear reason.
_PROBE_LIMIT_BYTES = 1 << 62
_PROBE_LIMIT_S = float("inf")


FINGERPRINT_BYTES = 64 * 1024


def identity_prefix(st: os.stat_result) -> str:
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:"


def file_identity(st: os.stat_result) -> str:
    """Device, inode, size and mtime: the same recording, even after a rename."""
    return f"{identity_prefix(st)}{st.st_mtime_ns}"


def file_fingerprint(path: str | Path, size: int) -> str:
    """Blocking: a hash of the first and last 64 KiB and the size. Cheap even for big files."""
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > 2 * FINGERPRINT_BYTES:
            handle.seek(size - FINGERPRINT_BYTES)
        digest.update(handle.read(FINGERPRINT_BYTES))
    return digest.hexdigest()[:32]


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    changed_at: float
    rejected: bool = False


class _Forwarder(FileSystemEventHandler):
    """Runs on watchdog's thread: hands (kind, path) to the loop, nothing else."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[tuple[str, str]]):
        self._loop = loop
        self._queue = queue

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if event.event_type == "closed":
            item = ("closed", str(event.src_path))
        elif event.event_type == "moved":
            item = ("closed", str(event.dest_path))
        elif event.event_type in ("created", "modified"):
            item = ("changed", str(event.src_path))
        else:
            return
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)


class FolderSource:
    def __init__(
        self,
        db: AsyncLedger,
        camera: CameraConfig,
        *,
        on_clip: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 0.5,
    ) -> None:
        assert camera.folder is not None
        self.name = camera.name
        self._db = db
        self._camera = camera
        self._folder = camera.folder
        self._on_clip = on_clip
        self._clock = clock
        self._tick_s = min(tick_s, camera.settle / 2) if camera.settle > 0 else tick_s
        self._candidates: dict[str, _Candidate] = {}
        #: Set once the watcher runs and the catch-up scan is done.
        self.ready = asyncio.Event()

    def _wanted(self, path: str) -> bool:
        name = os.path.basename(path)
        if not fnmatch.fnmatch(name, self._camera.pattern):
            return False
        return not any(fnmatch.fnmatch(name, pattern) for pattern in self._camera.ignore)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        observer = PollingObserver(timeout=self._camera.poll) if self._camera.poll else Observer()
        observer.schedule(_Forwarder(loop, queue), str(self._folder), recursive=True)
        await asyncio.to_thread(observer.start)
        try:
            await self._catch_up()
            self.ready.set()
            while True:
                try:
                    kind, path = await asyncio.wait_for(queue.get(), self._tick_s)
                except TimeoutError:
                    await self._check_settled()
                    continue
                if self._wanted(path):
                    await self._seen(path, closed=kind == "closed")
        finally:
            observer.stop()
            await asyncio.to_thread(observer.join, 5)

    async def _catch_up(self) -> None:
        """Files that finished while edged was down, oldest first, bounded by `since`."""
        not_before = await self._db.run(self._since_epoch)
        found = await asyncio.to_thread(self._scan, not_before)
        log.info("catch-up camera=%s: %d files to check in %s", self.name, len(found), self._folder)
        for path in found:
            await self._seen(path, closed=False)
        await self._check_settled()

    def _since_epoch(self) -> float:
        """Blocking. `since: start` means: only files newer than edged's first run here."""
        since_s = self._camera.since_s
        if since_s is not None:
            return self._clock() - since_s
        key = f"first_run:{self.name}"
        first = self._db.ledger.get_meta(key)
        if first is None:
            first = str(self._clock())
            self._db.ledger.set_meta(key, first)
        return float(first)

    def _scan(self, not_before: float) -> list[str]:
        found: list[tuple[float, str]] = []
        for root, dirs, files in os.walk(self._folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = os.path.join(root, name)
                if not self._wanted(path):
                    continue
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    continue
                if mtime >= not_before:
                    found.append((mtime, path))
        return [path for _, path in sorted(found)]

    async def _seen(self, path: str, *, closed: bool) -> None:
        try:
            st = await asyncio.to_thread(os.stat, path)
        except OSError:
            self._candidates.pop(path, None)
            return
        candidate = self._candidates.get(path)
        if candidate is None or (candidate.size, candidate.mtime_ns) != (
            st.st_size,
            st.st_mtime_ns,
        ):
            candidate = _Candidate(st.st_size, st.st_mtime_ns, self._clock())
            self._candidates[path] = candidate
        if closed:
            await self._try_finish(path, settled=False)

    async def _check_settled(self) -> None:
        now = self._clock()
        for path, candidate in list(self._candidates.items()):
            try:
                st = await asyncio.to_thread(os.stat, path)
            except OSError:
                self._candidates.pop(path, None)
                continue
            if (st.st_size, st.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                self._candidates[path] = _Candidate(st.st_size, st.st_mtime_ns, now)
            elif not candidate.rejected and now - candidate.changed_at >= self._camera.settle:
                await self._try_finish(path, settled=True)

    async def _try_finish(self, path: str, *, settled: bool) -> None:
        """Queue the file if it is a complete video not yet in the ledger."""
        candidate = self._candidates.get(path)
        try:
            st = await asyncio.to_thread(os.stat, path)
            key = file_identity(st)
            known = await self._db.run(
                self._db.ledger.fingerprints_with_prefix, identity_prefix(st)
            )
            fingerprint = None
            if key not in known:
                fingerprint = await asyncio.to_thread(file_fingerprint, path, st.st_size)
            if key in known or fingerprint in known.values():
                # Already in the ledger: a restart, a rename, or a touch of the same content.
                self._candidates.pop(path, None)
                return
            info = await asyncio.to_thread(
                probe_video, Path(path), max_bytes=_PROBE_LIMIT_BYTES, max_duration_s=_PROBE_LIMIT_S
            )
            after = await asyncio.to_thread(os.stat, path)
            if file_identity(after) != key:
                return  # written to while it was probed: not finished, look again later
        except FileNotFoundError:
            self._candidates.pop(path, None)
            return
        except (ClipRejected, OSError) as exc:
            if settled and candidate is not None and not candidate.rejected:
                candidate.rejected = True
                log.error(
                    "skipping camera=%s file=%s: not a complete video after %.0fs unchanged: %s",
                    self.name,
                    path,
                    self._camera.settle,
                    exc,
                )
            return
        start = datetime.fromtimestamp(st.st_mtime - info.duration_s, UTC)
        clip, created = await self._db.run(
            self._db.ledger.add_clip,
            NewClip(self.name, Path(path), st.st_size, start, info.duration_s, key, fingerprint),
        )
        self._candidates.pop(path, None)
        if created:
            log.info(
                "queued camera=%s clip=%s file=%s (%.1fs)",
                self.name,
                clip.id,
                path,
                info.duration_s,
            )
            self._on_clip()
