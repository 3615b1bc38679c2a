"""One connection to an RTSP camera, blocking, on its own thread: connect, cut, say why it ended.

`Connection.run` lasts from connect to whatever ends the connection (edged stopping, a stall,
the camera hanging up, an error) and returns a `SessionEnd`. Finished clips, and `Streaming`
when footage flows, go to `emit`, which hands them to the loop. `in_thread` runs it on a new
daemon thread, never the loop's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av

from edged.config.cameras import RtspCamera
from edged.logs import Redactor
from edged.sources.live_activity import LiveActivity
from edged.sources.rtsp_segmenter import Segmenter
from edged.sources.rtsp_values import CameraStats, FinishedClip
from edged.sources.rtsp_writer import StreamPlan

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Stream analysis on connect: long enough to learn the codecs, short for a quick start.
ANALYZE_S = 1.0


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """How a connection ended."""

    streamed: bool  # footage flowed on this connection
    reason: str
    last_packet_at: float | None  # wall clock


class Streaming:
    """Marker from the connection thread: footage flows again."""


@dataclass(frozen=True, slots=True)
class Connection:
    """What a connection to one camera needs; `run` makes one."""

    camera: RtspCamera
    camera_dir: Path
    stats: CameraStats
    shown_url: str  # the URL without its password, for the log
    clock: Callable[[], float] = time.time
    live: LiveActivity | None = None  # `upload: activity`: its keyframes examined as they come

    def run(
        self, emit: Callable[[FinishedClip | Streaming], None], stop: threading.Event
    ) -> SessionEnd:
        """Blocking: one connection, from connect to whatever ends it."""
        camera = self.camera
        options = {
            "rtsp_transport": camera.rtsp_transport,
            "timeout": str(int(camera.stall_timeout * 1_000_000)),  # socket I/O, µs
            "analyzeduration": str(int(ANALYZE_S * 1_000_000)),
        }
        # No `timeout=` here: PyAV implements it with an interrupt callback that FFmpeg calls
        # on every I/O poll, taking the GIL each time (most of the CPU with many cameras).
        # FFmpeg's own socket timeout (the `timeout` option) ends a stalled read instead.
        try:
            container = av.open(camera.rtsp, options=options)
        except TimeoutError:
            return SessionEnd(False, f"no answer within {camera.stall_timeout:g}s", None)
        except (av.FFmpegError, OSError) as exc:
            return SessionEnd(False, describe(exc), None)
        segmenter: Segmenter | None = None
        last_at: float | None = None
        try:
            if not container.streams.video:
                return SessionEnd(False, "the stream has no video", None)
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            plan = StreamPlan.choose(video, audio, camera.audio)
            log.info("connected camera=%s url=%s: %s", camera.name, self.shown_url, plan.describe())
            segmenter = Segmenter(
                camera.name,
                self.camera_dir,
                plan,
                camera.clip_seconds,
                emit,
                self.stats,
                on_streaming=lambda: emit(Streaming()),
                live=self.live,
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
                last_at = self.clock()
                segmenter.feed(packet)
            return SessionEnd(segmenter.streaming, "the camera ended the stream", last_at)
        except TimeoutError:  # FFmpeg's socket timeout (av.error.TimeoutError is one)
            reason = f"stalled: no packet for {camera.stall_timeout:g}s"
            return SessionEnd(segmenter is not None and segmenter.streaming, reason, last_at)
        except (av.FFmpegError, OSError) as exc:
            streamed = segmenter is not None and segmenter.streaming
            return SessionEnd(streamed, describe(exc), last_at)
        finally:
            if segmenter is not None:
                segmenter.finish()
            container.close()


def describe(exc: BaseException) -> str:
    """Why a connection failed, in words, without the passwords FFmpeg may quote."""
    return Redactor()(str(exc)) or type(exc).__name__


def in_thread(fn: Callable[..., T], /, *args: object, name: str) -> asyncio.Future[T]:
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
