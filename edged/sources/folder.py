"""NVR folder source: finished recordings under a folder become clips in the ledger.

A file is finished when it opens as a complete video and either was just closed after
writing (inotify), was just renamed into place, or has not changed for `settle` seconds
(always so in polling mode, for network shares). edged only reads here: it never writes,
moves or deletes NVR files. This module keeps the folder watched; which of its files are
finished is `folder_candidates`.

The folder itself may be missing (a share not mounted yet) or be deleted and made again
(an NVR's retention, an operator): the source waits for it, then watches the new one and
scans it for what appeared meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import time
import warnings
from collections.abc import Callable

from edged.aio import within
from edged.config.cameras import FolderCamera
from edged.ledger.thread import AsyncLedger
from edged.sources.folder_candidates import Candidates
from edged.sources.folder_watch import Change, FolderEvent, Forwarder, PolledWatch, SharedObserver
from edged.sources.recordings import Naming, scan

log = logging.getLogger(__name__)

#: How often the whole folder is scanned again, for events that were lost.
RESCAN_S = 300.0
#: How often a folder is polled whose inotify watch could not be set.
FALLBACK_POLL_S = 10.0

# watchdog's inotify backend warns when a new sub-folder's watch is registered twice (a
# benign race when an NVR creates nested day/hour folders at once); it is not ours to act on.
warnings.filterwarnings(
    "ignore", message=r"Callback with id .* already exists", category=RuntimeWarning
)


class FolderSource:
    def __init__(
        self,
        db: AsyncLedger,
        camera: FolderCamera,
        *,
        on_clip: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 0.5,
        observer: SharedObserver | None = None,
        fallback_poll_s: float = FALLBACK_POLL_S,
    ) -> None:
        self.name = camera.name
        self._db = db
        self._camera = camera
        self._naming = Naming.of(camera)
        self._clock = clock
        self._tick_s = min(tick_s, camera.settle / 2) if camera.settle > 0 else tick_s
        self._files = Candidates(db, camera, self._naming, on_clip=on_clip, clock=clock)
        self._shared = observer or SharedObserver.default()
        self._fallback_poll_s = fallback_poll_s
        self._polled = camera.poll is not None  # no close events to trust: settle decides
        #: Set once the watcher runs and the catch-up scan is done.
        self.ready = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        lost = False
        while True:  # once per life of the folder: it may be deleted and made again
            folder = await self._wait_for_folder(report=not lost)
            # A queue per life: late events of the last watch must not end this one.
            queue: asyncio.Queue[Change] = asyncio.Queue()
            root = str(self._naming.folder)
            handler = Forwarder(loop, queue, root)
            stop = await self._start_watch(handler, root, folder)
            if stop is None:
                continue  # gone again before the watch was set
            try:
                await self._catch_up()
                self.ready.set()
                await self._watch(queue, folder)
            finally:
                await asyncio.to_thread(stop)
            lost = True
            log.warning(
                "folder gone camera=%s folder=%s (deleted, moved or unmounted): watching for it"
                " to come back",
                self.name,
                self._naming.folder,
            )

    async def _start_watch(
        self, handler: Forwarder, root: str, folder: tuple[int, int]
    ) -> Callable[[], None] | None:
        """Watch the folder (inotify, shared by all folder cameras, or polling); returns how
        to stop, or None when the folder went away meanwhile."""
        if self._camera.poll is not None:
            polled = PolledWatch(self._camera.poll)
            await asyncio.to_thread(polled.watch, handler, root)
            return polled.stop
        try:
            if not await asyncio.to_thread(os.access, root, os.R_OK | os.X_OK):
                # inotify would take the watch and never report an event
                raise PermissionError(
                    errno.EACCES, f"not readable for edged's user (uid {os.geteuid()})"
                )
            watch = await asyncio.to_thread(self._shared.watch, handler, root)
        except OSError as exc:
            if await self._folder_id() != folder:
                return None
            log.error(
                "cannot watch camera=%s folder=%s with inotify: %s (see fs.inotify.max_user_watches"
                " in edged check-config); polling it every %.0fs instead",
                self.name,
                root,
                exc.strerror or exc,
                self._fallback_poll_s,
            )
            self._polled = True
            polled = PolledWatch(self._fallback_poll_s)
            await asyncio.to_thread(polled.watch, handler, root)
            return polled.stop
        self._polled = False
        return lambda: self._shared.unwatch(handler, watch)

    async def _watch(self, queue: asyncio.Queue[Change], folder: tuple[int, int]) -> None:
        """Until the folder is gone (deleted, replaced, unmounted)."""
        next_rescan = self._clock() + RESCAN_S
        next_tick = self._clock() + self._tick_s
        while True:
            try:
                event, path = await within(queue.get(), self._tick_s)
            except TimeoutError:
                pass
            else:
                if event is FolderEvent.GONE:
                    return
                if event is FolderEvent.TREE:
                    await self._seen_tree(path)
                elif self._naming.identify(path) is not None:
                    await self._files.seen(
                        path, closed=event is FolderEvent.CLOSED and not self._polled
                    )
                # A folder that changes all the time (an NVR writing, its temporary files)
                # must still get its settle checks and rescans: not only when it is quiet.
                if self._clock() < next_tick:
                    continue
            next_tick = self._clock() + self._tick_s
            if await self._folder_id() != folder:
                return  # the watch died with the old folder's inode
            await self._files.check_settled()
            if self._clock() >= next_rescan:
                await self._rescan(next_rescan - RESCAN_S)
                next_rescan = self._clock() + RESCAN_S

    async def _folder_id(self) -> tuple[int, int] | None:
        """Device and inode of the folder; None while it is missing."""
        try:
            st = await asyncio.to_thread(os.stat, self._naming.folder)
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None

    async def _wait_for_folder(self, *, report: bool) -> tuple[int, int]:
        folder = await self._folder_id()
        if folder is not None:
            return folder
        if report:
            log.warning(
                "folder missing camera=%s folder=%s: waiting for it (a share not mounted yet?)",
                self.name,
                self._naming.folder,
            )
        while folder is None:
            await asyncio.sleep(self._tick_s)
            folder = await self._folder_id()
        log.info("folder found camera=%s folder=%s: scanning it", self.name, self._naming.folder)
        return folder

    async def _catch_up(self) -> None:
        """Files that finished while edged was down, oldest first, bounded by `since`."""
        not_before = await self._db.call(self._since_epoch)
        unlisted: list[OSError] = []
        found = await asyncio.to_thread(scan, self._naming, not_before, unlisted=unlisted)
        log.info(
            "catch-up camera=%s: %d files to check in %s",
            self.name,
            len(found),
            self._naming.folder,
        )
        if unlisted:  # one line: similar errors of a camera are held back for a while
            log.error(
                "cannot list camera=%s: %d folders (%s) for edged's user (uid %d): %s; their"
                " recordings are not seen until edged may read them and is restarted",
                self.name,
                len(unlisted),
                ", ".join(str(error.filename) for error in unlisted[:5]),
                os.geteuid(),
                unlisted[0].strerror,
            )
        for _, path in found:
            await self._files.seen(path, closed=False)
        await self._files.check_settled()

    async def _rescan(self, since: float) -> None:
        """A safety net: files whose events were lost (a watch added late to a folder created
        in a burst, an overflowed inotify queue) are found by a periodic scan."""
        found = await asyncio.to_thread(scan, self._naming, since - self._camera.settle)
        for _, path in found:
            if path not in self._files:
                await self._files.seen(path, closed=False)

    def _since_epoch(self) -> float:
        """Blocking. `since: start` means: only files newer than edged's first run here."""
        since_s = self._camera.since_s
        if since_s is not None:
            return self._clock() - since_s
        return float(
            self._db.ledger.meta.get_or_create(f"first_run:{self.name}", lambda: str(self._clock()))
        )

    async def _seen_tree(self, path: str) -> None:
        found = await asyncio.to_thread(scan, self._naming, None, under=path)
        for _, recording in found:
            await self._files.seen(recording, closed=False)
