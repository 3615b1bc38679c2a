"""The files of a folder camera on their way to the ledger, from first sight to queued.

A file seen under a recording's name is a candidate. It is examined once it was just closed
after writing (inotify) or has not changed for `settle` seconds (always so in polling mode);
a file that is not a complete video yet waits for its next change, and is reported once. Only
regular files are read: a link, FIFO or device under a recording's name is reported once and
never opened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from edged.config.cameras import FolderCamera
from edged.ledger.thread import AsyncLedger
from edged.media.regular_files import kind_of
from edged.sources.recordings import Naming, Verdict, examine

log = logging.getLogger(__name__)


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    ctime_ns: int  # a chmod that makes an unreadable file readable changes only this
    changed_at: float
    rejected: bool = False

    @classmethod
    def of(cls, st: os.stat_result, now: float) -> _Candidate:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, now)

    def same(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.ctime_ns) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )


class Candidates:
    """The files of one folder camera not yet queued (or given up on), by path."""

    def __init__(
        self,
        db: AsyncLedger,
        camera: FolderCamera,
        naming: Naming,
        *,
        on_clip: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self.name = camera.name
        self._db = db
        self._camera = camera
        self._naming = naming
        self._on_clip = on_clip
        self._clock = clock
        self._candidates: dict[str, _Candidate] = {}
        self._refused: set[str] = set()  # paths reported as not regular files

    def __contains__(self, path: str) -> bool:
        return path in self._candidates

    async def seen(self, path: str, *, closed: bool) -> None:
        """A file under a recording's name appeared or changed; `closed`: just closed after
        writing, so it is examined now."""
        try:
            st = await asyncio.to_thread(os.lstat, path)
        except OSError:
            self._candidates.pop(path, None)
            return
        if not stat.S_ISREG(st.st_mode):
            # A link, FIFO, folder or device under a recording's name: never read.
            self._candidates.pop(path, None)
            self._not_regular(path, st.st_mode)
            return
        candidate = self._candidates.get(path)
        if candidate is None or not candidate.same(st):
            self._candidates[path] = _Candidate.of(st, self._clock())
        if closed:
            await self._try_finish(path, settled=False)

    async def check_settled(self) -> None:
        """Examines the candidates unchanged for `settle` seconds (on every tick)."""
        now = self._clock()
        for path, candidate in list(self._candidates.items()):
            try:
                st = await asyncio.to_thread(os.lstat, path)
            except OSError:
                self._candidates.pop(path, None)
                continue
            if not stat.S_ISREG(st.st_mode):  # e.g. a FIFO renamed over a recording
                self._candidates.pop(path, None)
                self._not_regular(path, st.st_mode)
                continue
            if not candidate.same(st):
                self._candidates[path] = _Candidate.of(st, now)
            elif not candidate.rejected and now - candidate.changed_at >= self._camera.settle:
                await self._try_finish(path, settled=True)

    def _not_regular(self, path: str, mode: int) -> None:
        """One line per path: only regular files inside the folder are read."""
        if path in self._refused:
            return
        if len(self._refused) > 10_000:  # bounded memory whatever lands in the folder
            self._refused.clear()
        self._refused.add(path)
        log.warning(
            "ignoring camera=%s file=%s: %s; edged reads only regular files inside the folder",
            self.name,
            path,
            kind_of(mode),
        )

    async def _try_finish(self, path: str, *, settled: bool) -> None:
        result = await examine(self._db, self._naming, path, settled=settled)
        if result.verdict is Verdict.CHANGING:
            return
        if result.verdict is Verdict.NOT_OURS:
            self._candidates.pop(path, None)
            return
        if result.verdict is Verdict.INCOMPLETE:
            candidate = self._candidates.get(path)
            if settled and candidate is not None and not candidate.rejected:
                candidate.rejected = True  # reported once; a later change clears it
                if result.unreadable:
                    log.error(
                        "cannot read camera=%s file=%s: %s; it is queued once edged may read it",
                        self.name,
                        path,
                        result.reason,
                    )
                    return
                log.error(
                    "skipping camera=%s file=%s: not a complete video after %.0fs unchanged: %s",
                    self.name,
                    path,
                    self._camera.settle,
                    result.reason,
                )
            return
        self._candidates.pop(path, None)
        if result.verdict is Verdict.QUEUED and result.clip is not None:
            clip = result.clip
            log.info(
                "queued camera=%s clip=%s file=%s (%.1fs)",
                clip.camera,
                clip.id,
                path,
                clip.duration_s or 0.0,
            )
            self._on_clip()
