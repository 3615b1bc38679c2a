"""The storage quota: edged's own clips (storage.dir/clips) never fill the disk.

Each round, in this order:

1. clips that are `done` lose their file once `storage.keep_uploaded` has passed (at once
   by default), and so do clips already dropped whose file is still there;
2. while edged's clips take more than `storage.max_bytes`, or the filesystem has less than
   `storage.min_free` free: first the files of done clips still within keep_uploaded go,
   then the clips not uploaded yet are dropped, those without activity (skipped_idle) first,
   then the oldest others (queued, waiting for a retry, expired, failed, skipped by a
   schedule or budget), each one logged as an error, recorded in the ledger and counted.

storage.dir itself is private to edged's user and group whatever the umask it was started
with (`private_storage`): the ledger holds the snapshot key, callback tokens and results.

Only files under storage.dir/clips whose clip edged itself recorded there are ever deleted:
never a file of an NVR folder, nor anything `edged upload` was given. Clips being uploaded,
or uploaded and waiting for their result, are left alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edged.aio import woken
from edged.clip import Clip, ClipState
from edged.config.service import StorageConfig
from edged.ledger.reserve import restore_reserve
from edged.ledger.thread import AsyncLedger
from edged.sources.rtsp_files import SOURCE_KEY_PREFIX as PREFIX
from edged.sources.rtsp_files import clips_root

log = logging.getLogger(__name__)

#: How often the quota is checked when nothing wakes it.
CHECK_EVERY_S = 10.0
#: Not uploaded yet, and not in the hands of the uploader right now: may be dropped.
DROPPABLE = (
    ClipState.QUEUED,
    ClipState.RETRY_WAIT,
    ClipState.EXPIRED,
    ClipState.FAILED,
    ClipState.SKIPPED_BUDGET,
    ClipState.SKIPPED_SCHEDULE,
    ClipState.SKIPPED_IDLE,
)


@dataclass
class StorageStats:
    deleted: int = 0  # files of done clips removed
    dropped: int = 0  # clips never uploaded, given up for space
    used_bytes: int = 0
    free_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    used_bytes: int  # edged's clips, finished and in progress
    free_bytes: int  # on the filesystem of storage.dir

    def excess(self, max_bytes: int | None, min_free: int) -> int:
        """How many bytes must go to be within both limits (0: none)."""
        over = self.used_bytes - max_bytes if max_bytes is not None else 0
        return max(0, over, min_free - self.free_bytes)


def measure(root: Path) -> Usage:
    """Blocking: bytes under `root` (every clip and part) and free bytes on its filesystem."""
    used = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                used += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # deleted meanwhile
    fs = os.statvfs(root)
    return Usage(used, fs.f_bavail * fs.f_frsize)


#: Permission bits no one but edged's user and group gets on what edged writes (the systemd
#: unit's UMask=0027, applied to the process whatever umask it was started with).
PRIVATE_UMASK = 0o027


def private_storage(directory: Path) -> str | None:
    """Blocking, on start, before anything is written: tighten the process umask to at least
    PRIVATE_UMASK, make `directory` (0750) and take other users' access from it and from
    what it already holds at its top (the ledger and its -wal/-shm, the reserve, snapshots,
    clips: left world-readable by a run under umask 022). None, or why it could not."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        for path in (directory, *directory.iterdir()):
            st = os.lstat(path)
            if st.st_mode & 0o007 and not stat.S_ISLNK(st.st_mode) and st.st_uid == os.geteuid():
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o007)
    except OSError as exc:
        return f"cannot make {directory} private to edged's user: {exc.strerror or exc}"
    return None


def _disk_bytes(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


class StorageQuota:
    def __init__(
        self,
        db: AsyncLedger,
        storage: StorageConfig,
        *,
        check_every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._dir = storage.dir
        self._root = clips_root(storage.dir)
        self._max_bytes = storage.max_bytes
        self._min_free = storage.min_free
        self._keep_s = storage.keep_uploaded
        self._every_s = check_every_s
        self._clock = clock
        self.stats = StorageStats()
        self._first_round = True
        #: Set by sources when a clip was added, to check at once.
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self.enforce()
            await woken(self.wake, self._every_s)

    async def enforce(self) -> Usage:
        """One round (see the module's doc); returns the usage it left."""
        await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
        ledger = self._db.ledger
        cutoff = self._clock() - self._keep_s
        done = [ClipState.DONE]
        expired = await self._db.call(ledger.quota.own_clips, PREFIX, done, done_before=cutoff)
        for clip in expired:
            await self._delete(clip, "uploaded and analysed")
        merged = await self._db.call(ledger.quota.merged_and_sent, PREFIX, cutoff)
        for clip in merged:
            await self._delete(clip, "sent within its event clip")
        for clip in await self._db.call(ledger.quota.own_clips, PREFIX, [ClipState.DROPPED]):
            await self._delete(clip, "dropped")  # a crash came between the drop and the delete
        usage = await asyncio.to_thread(measure, self._root)
        excess = usage.excess(self._max_bytes, self._min_free)
        if excess > 0:
            for clip in await self._db.call(ledger.quota.own_clips, PREFIX, done):
                if excess <= 0:
                    break
                excess -= await self._delete(clip, "uploaded; space needed before keep_uploaded")
            if excess > 0:
                excess = await self._drop_oldest(excess, usage)
            usage = await asyncio.to_thread(measure, self._root)
        self.stats.used_bytes, self.stats.free_bytes = usage.used_bytes, usage.free_bytes
        # The ledger's reserve (edged/ledger/reserve.py): made on the first round, given up on
        # a full disk, back once there is room.
        made = await asyncio.to_thread(restore_reserve, self._dir, self._min_free)
        if made and not self._first_round:
            log.info("disk has room again: the ledger's reserve is back in %s", self._dir)
        self._first_round = False
        return usage

    async def _drop_oldest(self, excess: int, usage: Usage) -> int:
        candidates = await self._db.call(self._db.ledger.quota.own_clips, PREFIX, DROPPABLE)
        # Clips without activity go first, oldest first: then the ones that may show someone.
        candidates.sort(key=lambda clip: clip.state is not ClipState.SKIPPED_IDLE)
        for clip in candidates:
            if excess <= 0:
                break
            if not self._ours(clip.path):
                continue
            limit = (
                f"storage.max_bytes {self._max_bytes}"
                if self._max_bytes is not None and usage.used_bytes > self._max_bytes
                else f"storage.min_free {self._min_free} (free {usage.free_bytes})"
            )
            reason = f"dropped by the storage quota before upload ({clip.state}): {limit}"
            drop = asyncio.ensure_future(
                self._db.call(self._db.ledger.quota.mark_dropped, clip.id, reason, DROPPABLE)
            )
            try:
                moved = await asyncio.shield(drop)
            except asyncio.CancelledError:
                # Stopped while the ledger thread ran the drop: a drop that committed still
                # gets its line (its file goes at the next start), then the stop goes on.
                if await drop:
                    self._dropped(clip, limit)
                raise
            if not moved:
                continue  # taken for upload meanwhile
            self._dropped(clip, limit)
            excess -= await self._delete(clip, "dropped")
        if excess > 0:
            log.error(
                "storage still %d bytes over its limits: nothing more edged may delete", excess
            )
        return excess

    def _dropped(self, clip: Clip, limit: str) -> None:
        self.stats.dropped += 1
        # The file comes first: repeated log lines are grouped by their first argument
        # (edged/logs.py), and each drop loses a clip, so each gets a line of its own.
        log.error(
            "%s: storage full: dropped camera=%s clip=%s (never uploaded; %s)",
            clip.path,
            clip.camera,
            clip.id,
            limit,
        )

    async def _delete(self, clip: Clip, why: str) -> int:
        """Remove the clip's file (only ever under storage.dir/clips); bytes freed."""
        if not self._ours(clip.path):
            log.error("not deleting camera=%s clip=%s file=%s: outside %s",
                      clip.camera, clip.id, clip.path, self._root)  # fmt: skip
            await self._db.call(
                self._db.ledger.quota.mark_file_deleted, clip.id, "not edged's file"
            )
            return 0
        size = await asyncio.to_thread(_disk_bytes, clip.path)
        await asyncio.to_thread(clip.path.unlink, missing_ok=True)
        await self._db.call(self._db.ledger.quota.mark_file_deleted, clip.id, why)
        if why != "dropped":
            self.stats.deleted += 1
        log.info("deleted camera=%s clip=%s file=%s: %s", clip.camera, clip.id, clip.path, why)
        return size

    def _ours(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self._root.resolve())
        except ValueError:
            return False
        return True
