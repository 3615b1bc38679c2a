"""The activity gate: a clip of a camera with `upload: activity` is examined before it is
queued.

Its source adds it as `examining`; this stage examines it (keyframes only, scaled down, in a
worker thread: PyAV decodes and scales and numpy compares mostly without the GIL, and the
recording threads never wait for it), stores what it found, and moves it on: to `queued`
when something moved in its zones, to `skipped_idle` when nothing did (kept, listed by
`edged status`, sent after `edged retry --skipped`). A clip it cannot read, or of a camera
no longer gated after a reload, is queued all the same: footage is never skipped unseen. A
clip left `examining` by a crash or a stop is examined at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable

from edged.activity import ClipActivity, ExamineError, Settings, Stopped, examine_file
from edged.aio import woken
from edged.clip import Clip, ClipState
from edged.config.cameras import Camera
from edged.ledger.activity import ClipActivityRecord
from edged.ledger.thread import AsyncLedger

log = logging.getLogger(__name__)

#: How often the ledger is looked at for clips to examine when nothing wakes the gate.
POLL_S = 5.0


def gate_settings(cameras: Iterable[Camera]) -> dict[str, Settings]:
    """The detector's settings of every gated camera, by name."""
    return {
        camera.name: (camera.activity.settings() if camera.activity else Settings())
        for camera in cameras
        if camera.gated
    }


def as_record(found: ClipActivity) -> ClipActivityRecord:
    return ClipActivityRecord(
        seconds=found.seconds,
        active=found.active,
        peak_score=found.peak_score,
        peak_area=found.peak_area,
        samples=found.samples,
    )


class ActivityGate:
    def __init__(
        self,
        db: AsyncLedger,
        cameras: Iterable[Camera],
        *,
        on_queued: Callable[[], None],
        poll_s: float = POLL_S,
    ) -> None:
        self._db = db
        self._settings = gate_settings(cameras)
        self._on_queued = on_queued
        self._poll_s = poll_s
        self.wake = asyncio.Event()

    def set_cameras(self, cameras: Iterable[Camera]) -> None:
        """After a reload: the next clips are examined with the new zones and settings."""
        self._settings = gate_settings(cameras)

    async def run(self) -> None:
        stop = threading.Event()
        try:
            while True:
                waiting = await self._db.call(self._db.ledger.clips.in_state, ClipState.EXAMINING)
                for clip in waiting:
                    await self._examine(clip, stop)
                await woken(self.wake, self._poll_s)
        finally:
            stop.set()  # an examination still running in its thread ends at its next frame

    async def _examine(self, clip: Clip, stop: threading.Event) -> None:
        settings = self._settings.get(clip.source or clip.camera)
        if settings is None:
            await self._pass(clip, "its camera no longer uploads by activity")
            return
        try:
            found = await asyncio.to_thread(examine_file, clip.path, settings, stop=stop)
        except Stopped:
            return
        except ExamineError as exc:
            await self._pass(clip, str(exc))
            return
        except OSError as exc:  # gone or unreadable: the upload's own checks tell which
            await self._pass(clip, f"cannot read the file: {exc.strerror or exc}")
            return
        state = await self._db.call(self._db.ledger.activity.examined, clip.id, as_record(found))
        if state is None:
            return
        log.info(
            "activity camera=%s clip=%s: %d active seconds of %.0f, peak area %.2f%%: %s",
            clip.camera,
            clip.id,
            found.active_seconds,
            found.seconds,
            found.peak_area * 100,
            state.value,
        )
        if state is ClipState.QUEUED:
            self._on_queued()

    async def _pass(self, clip: Clip, reason: str) -> None:
        if await self._db.call(self._db.ledger.activity.unreadable, clip.id, reason):
            log.warning(
                "activity not examined camera=%s clip=%s, queued as it is: %s",
                clip.camera,
                clip.id,
                reason,
            )
            self._on_queued()
