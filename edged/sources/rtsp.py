"""RTSP cameras: edged pulls each stream itself and cuts it into contiguous clips.

One `RtspSource` per camera. Its connection runs on a thread of its own (PyAV demux and mux
release the GIL, and one camera's slow disk or dead network never holds up another's);
the event loop only makes finished clips durable, puts them in the ledger and keeps the
outage record. A connection that fails or stalls is retried with jittered backoff, capped
at 30 s, forever; the clip in progress when it dropped is closed and queued, short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import av

from edged.backoff import full_jitter
from edged.clip import NewClip
from edged.config.cameras import RtspCamera
from edged.ledger.thread import AsyncLedger
from edged.logs import Redactor
from edged.sources.rtsp_files import (
    SOURCE_KEY_PREFIX,
    clips_root,
    publish,
    source_key,
)
from edged.sources.rtsp_recovery import Recovered, recover_camera, recover_part
from edged.sources.rtsp_segmenter import CameraStats, FinishedClip, Segmenter
from edged.sources.rtsp_writer import StreamPlan

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Stream analysis on connect: long enough to learn the codecs, short for a quick start.
ANALYZE_S = 1.0
#: On shutdown, how long the connection thread gets to close the clip in progress.
STOP_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class SessionEnd:
    streamed: bool  # footage flowed on this connection
    reason: str
    last_packet_at: float | None  # wall clock


class _Streaming:
    """Marker from the connection thread: footage flows again."""


class RtspSource:
    def __init__(
        self,
        db: AsyncLedger,
        camera: RtspCamera,
        storage_dir: Path,
        *,
        on_clip: Callable[[], None] = lambda: None,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = camera.name
        self._db = db
        self._camera = camera
        self._url = camera.rtsp
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
        items: asyncio.Queue[FinishedClip | _Streaming] = asyncio.Queue()
        stop = threading.Event()
        sessions: list[asyncio.Future[SessionEnd]] = []
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

    # -- connections ------------------------------------------------------------------------

    async def _connect_forever(
        self,
        items: asyncio.Queue[FinishedClip | _Streaming],
        stop: threading.Event,
        sessions: list[asyncio.Future[SessionEnd]],
    ) -> None:
        loop = asyncio.get_running_loop()

        def emit(item: FinishedClip | _Streaming) -> None:
            # RuntimeError: the loop is gone (edged stopped); the part is recovered on start.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(items.put_nowait, item)

        failures = 0
        while True:
            self.stats.connects += 1
            sessions[:] = [_in_thread(self._session, emit, stop, name=f"rtsp:{self.name}")]
            end = await asyncio.shield(sessions[0])  # cancelling us must not cancel it
            failures = 1 if end.streamed else failures + 1
            delay = full_jitter(
                failures, base_s=self._backoff_base_s, cap_s=self._backoff_cap_s, rng=self._rng
            )
            await self._went_down(end, delay)
            await asyncio.sleep(delay)

    def _session(
        self, emit: Callable[[FinishedClip | _Streaming], None], stop: threading.Event
    ) -> SessionEnd:
        """Blocking: one connection, from connect to whatever ends it."""
        camera = self._camera
        options = {
            "rtsp_transport": camera.rtsp_transport,
            "timeout": str(int(camera.stall_timeout * 1_000_000)),  # socket I/O, µs
            "analyzeduration": str(int(ANALYZE_S * 1_000_000)),
        }
        # No `timeout=` here: PyAV implements it with an interrupt callback that FFmpeg calls
        # on every I/O poll, taking the GIL each time (most of the CPU with many cameras).
        # FFmpeg's own socket timeout (the `timeout` option) ends a stalled read instead.
        try:
            container = av.open(self._url, options=options)
        except TimeoutError:
            return SessionEnd(False, f"no answer within {camera.stall_timeout:g}s", None)
        except (av.FFmpegError, OSError) as exc:
            return SessionEnd(False, self._describe(exc), None)
        segmenter: Segmenter | None = None
        last_at: float | None = None
        try:
            if not container.streams.video:
                return SessionEnd(False, "the stream has no video", None)
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            plan = StreamPlan.choose(video, audio, camera.audio)
            log.info("connected camera=%s url=%s: %s", self.name, self.shown_url, plan.describe())
            segmenter = Segmenter(
                self.name,
                self._camera_dir,
                plan,
                camera.clip_seconds,
                emit,
                self.stats,
                on_streaming=lambda: emit(_Streaming()),
            )
            wanted = [video] if plan.audio is None else [video, plan.audio]
            last_video = time.monotonic()
            for packet in container.demux(wanted):
                if stop.is_set():
                    return SessionEnd(segmenter.streaming, "edged is stopping", last_at)
                if not packet.size:
                    continue  # the demuxer's end-of-stream markers
                now = time.monotonic()
                if packet.stream.index == video.index:
                    last_video = now
                elif now - last_video > camera.stall_timeout:
                    reason = f"stalled: no video for {camera.stall_timeout:g}s"
                    return SessionEnd(segmenter.streaming, reason, last_at)
                last_at = self._clock()
                segmenter.feed(packet)
            return SessionEnd(segmenter.streaming, "the camera ended the stream", last_at)
        except TimeoutError:  # FFmpeg's socket timeout (av.error.TimeoutError is one)
            reason = f"stalled: no packet for {camera.stall_timeout:g}s"
            return SessionEnd(segmenter is not None and segmenter.streaming, reason, last_at)
        except (av.FFmpegError, OSError) as exc:
            streamed = segmenter is not None and segmenter.streaming
            return SessionEnd(streamed, self._describe(exc), last_at)
        finally:
            if segmenter is not None:
                segmenter.finish()
            container.close()

    def _describe(self, exc: BaseException) -> str:
        return Redactor()(str(exc)) or type(exc).__name__

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

    async def _store_forever(self, items: asyncio.Queue[FinishedClip | _Streaming]) -> None:
        while True:
            item = await items.get()
            if isinstance(item, _Streaming):
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
        await self._queue(final, clip.start, duration_s, size, key, partial=clip.partial)

    async def _queue(
        self, path: Path, start: datetime, duration_s: float, size: int, key: str, *, partial: bool
    ) -> None:
        new = NewClip(self.name, path, size, start, duration_s, key)
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


def _in_thread(fn: Callable[..., T], /, *args: object, name: str) -> asyncio.Future[T]:
    """Run `fn` on a new daemon thread: one per camera connection, never the loop's pool (which
    has a few workers for everyone), and never waited for at exit if a camera hangs."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, which decides
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future
