"""RTSP cameras: edged pulls each stream itself and cuts it into contiguous clips.

One `RtspSource` per camera. Its connection runs on a thread of its own (PyAV demux and mux
release the GIL, and one camera's slow disk or dead network never holds up another's);
the event loop only makes finished clips durable, puts them in the ledger and keeps the
outage record. A connection that fails or stalls is retried with jittered backoff, capped
at 30 s, forever; the clip in progress when it dropped is closed and queued, short.
The connection itself, on its thread, is `rtsp_session`. A camera with `upload: activity` is
examined as it records (`live_activity`, a worker thread of its own): what it found goes with
each clip to the gate, and its clips end as soon as an event's post-roll has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av

from edged.activity import ClipActivity
from edged.backoff import full_jitter
from edged.clip import NewClip
from edged.config.activity import ActivityConfig
from edged.config.cameras import RtspCamera
from edged.ledger.thread import AsyncLedger
from edged.logs import Redactor
from edged.sources.live_activity import LiveActivity, LiveFindings
from edged.sources.live_substream import SubStream
from edged.sources.rtsp_files import (
    SOURCE_KEY_PREFIX,
    clips_root,
    publish,
    source_key,
)
from edged.sources.rtsp_recovery import Recovered, recover_camera, recover_part
from edged.sources.rtsp_session import Connection, SessionEnd, Streaming, in_thread
from edged.sources.rtsp_values import CameraStats, FinishedClip, StreamSpan

log = logging.getLogger(__name__)

#: On shutdown, how long the connection thread gets to close the clip in progress.
STOP_WAIT_S = 5.0
#: How long a finished clip waits for the live examination to catch up with its end before
#: it goes to the gate without it (and the gate examines its file).
LIVE_WAIT_S = 5.0


class RtspSource:
    def __init__(
        self,
        db: AsyncLedger,
        camera: RtspCamera,
        storage_dir: Path,
        *,
        on_clip: Callable[[], None] = lambda: None,
        findings: LiveFindings | None = None,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = camera.name
        self._gated = camera.gated  # its clips are examined before they are queued
        self._db = db
        self.shown_url = Redactor()(camera.rtsp)
        self._storage_dir = storage_dir
        self._camera_dir = clips_root(storage_dir) / camera.name
        self._on_clip = on_clip
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._outage: int | None = None
        self._outage_from = 0.0
        self.stats = CameraStats()
        self._findings = findings
        self.live: LiveActivity | None = None
        self.substream: SubStream | None = None
        activity = camera.activity or ActivityConfig()
        # With decode: all the gate examines each clip's file, every frame: nothing live.
        if camera.upload == "activity" and findings is not None and not activity.every_frame:
            self.live = LiveActivity(
                camera.name,
                activity.settings(),
                activity.post_roll,
                substream=activity.rtsp is not None,
            )
            if activity.rtsp is not None:
                self.substream = SubStream(
                    self.live,
                    activity.rtsp,
                    transport=camera.rtsp_transport,
                    stall_timeout_s=camera.stall_timeout,
                )
        self._connection = Connection(
            camera, self._camera_dir, self.stats, self.shown_url, clock, live=self.live
        )
        #: Clips whose store failed (a full disk): tried again once footage flows again.
        self._unfinished: list[FinishedClip] = []
        #: Set once left-over clips are recovered and the first connection is being made.
        self.ready = asyncio.Event()

    async def run(self) -> None:
        await self._recover()
        await self._db.call(
            self._db.ledger.outages.close_open_outages, self.name, "edged was stopped"
        )
        self.ready.set()
        items: asyncio.Queue[FinishedClip | Streaming] = asyncio.Queue()
        stop = threading.Event()
        sessions: list[asyncio.Future[SessionEnd]] = []
        if self.live is not None:
            name = f"live-activity:{self.name}"
            threading.Thread(target=self.live.run, name=name, daemon=True).start()
        if self.substream is not None:
            name = f"activity-substream:{self.name}"
            threading.Thread(
                target=self.substream.run, args=(stop,), name=name, daemon=True
            ).start()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._store_forever(items), name=f"rtsp-store:{self.name}")
                await self._connect_forever(items, stop, sessions)
        finally:
            # Shutdown: the thread closes the clip in progress (unless the camera is stalled:
            # then its part is recovered on the next start) and it is queued like any other.
            stop.set()
            if sessions and not sessions[-1].done():
                await asyncio.wait(sessions[-1:], timeout=STOP_WAIT_S)
            while not items.empty():
                item = items.get_nowait()
                if isinstance(item, FinishedClip):
                    await self._store(item)
            if self.live is not None:
                self.live.stop()

    # -- connections ------------------------------------------------------------------------

    async def _connect_forever(
        self,
        items: asyncio.Queue[FinishedClip | Streaming],
        stop: threading.Event,
        sessions: list[asyncio.Future[SessionEnd]],
    ) -> None:
        loop = asyncio.get_running_loop()

        def emit(item: FinishedClip | Streaming) -> None:
            # RuntimeError: the loop is gone (edged stopped); the part is recovered on start.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(items.put_nowait, item)

        failures = 0
        while True:
            self.stats.connects += 1
            sessions[:] = [in_thread(self._connection.run, emit, stop, name=f"rtsp:{self.name}")]
            end = await asyncio.shield(sessions[0])  # cancelling us must not cancel it
            failures = 1 if end.streamed else failures + 1
            delay = full_jitter(
                failures, base_s=self._backoff_base_s, cap_s=self._backoff_cap_s, rng=self._rng
            )
            await self._went_down(end, delay)
            await asyncio.sleep(delay)

    async def _went_down(self, end: SessionEnd, retry_in_s: float) -> None:
        if self._outage is not None:
            log.debug(
                "camera still down camera=%s url=%s: %s; retrying in %.1fs",
                self.name,
                self.shown_url,
                end.reason,
                retry_in_s,
            )
            return
        since = end.last_packet_at or self._clock()
        self._outage = await self._db.call(
            self._db.ledger.outages.open_outage_at, self.name, since, end.reason
        )
        self._outage_from = since
        self.stats.outages += 1
        log.warning(
            "camera down camera=%s url=%s: %s; retrying in %.1fs",
            self.name,
            self.shown_url,
            end.reason,
            retry_in_s,
        )

    async def _came_back(self) -> None:
        if self._outage is None:
            return
        outage, self._outage = self._outage, None
        await self._db.call(self._db.ledger.outages.close_outage, outage)
        log.info(
            "camera back camera=%s url=%s after %.1fs without footage",
            self.name,
            self.shown_url,
            self._clock() - self._outage_from,
        )

    # -- clips ------------------------------------------------------------------------------

    async def _store_forever(self, items: asyncio.Queue[FinishedClip | Streaming]) -> None:
        while True:
            item = await items.get()
            if isinstance(item, Streaming):
                await self._came_back()
                retry, self._unfinished = self._unfinished, []
                for clip in retry:  # the disk takes writes again
                    await asyncio.shield(self._store(clip))
            else:
                # Shielded: a clip being made durable is finished even during shutdown.
                await asyncio.shield(self._store(item))

    async def _store(self, clip: FinishedClip) -> None:
        try:
            if clip.damaged:
                recovered = await asyncio.to_thread(recover_part, clip.part)
                if recovered is None:
                    return
                final, duration_s = recovered
            else:
                final, duration_s = await asyncio.to_thread(publish, clip.part), clip.duration_s
            size = (await asyncio.to_thread(final.stat)).st_size
        except (av.FFmpegError, OSError) as exc:
            log.error(
                "could not finish camera=%s clip=%s (tried again when footage flows again,"
                " and recovered on restart): %s",
                self.name,
                clip.part.name,
                exc,
            )
            self._unfinished.append(clip)
            return
        key = source_key(self._storage_dir, final)
        if clip.stream is not None:
            await self._found_live(final, clip.stream, duration_s)
        await self._queue(final, clip.start, duration_s, size, key, partial=clip.partial)

    async def _found_live(self, path: Path, stream: StreamSpan, duration_s: float) -> None:
        """Before the clip is in the ledger (and the gate looks at it): its live activity."""
        if self.live is None or self._findings is None:
            return
        found: ClipActivity | None = await asyncio.to_thread(
            self.live.activity_of,
            stream.connection,
            stream.start_t,
            duration_s,
            timeout_s=LIVE_WAIT_S,
        )
        if found is not None:
            self._findings.put(path, found)

    async def _queue(
        self, path: Path, start: datetime, duration_s: float, size: int, key: str, *, partial: bool
    ) -> None:
        new = NewClip(self.name, path, size, start, duration_s, key, examine=self._gated)
        stored, created = await self._db.call(self._db.ledger.clips.add, new)
        if created:
            log.info(
                "queued camera=%s clip=%s file=%s start=%s duration=%.2fs%s",
                self.name,
                stored.id,
                path.name,
                start.astimezone(UTC).isoformat(timespec="milliseconds"),
                duration_s,
                " (cut short)" if partial else "",
            )
            self._on_clip()

    async def _recover(self) -> None:
        prefix = f"{SOURCE_KEY_PREFIX}{self.name}/"
        known = await self._db.call(self._db.ledger.clips.fingerprints_with_prefix, prefix)
        found: list[Recovered] = await asyncio.to_thread(
            recover_camera, self._storage_dir, self._camera_dir, known
        )
        for item in found:
            log.info(
                "recovered camera=%s file=%s (%s)",
                self.name,
                item.path.name,
                "cut short by a crash" if item.from_part else "finished, not yet queued",
            )
            await self._queue(
                item.path, item.start, item.duration_s, item.size, item.source_key, partial=False
            )
