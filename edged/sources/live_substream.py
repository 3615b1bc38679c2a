"""A camera's activity sub-stream (`activity.rtsp`): its frames read, a few a second, for the
live examination (edged/sources/live_activity.py), on a thread of its own.

A camera's second stream (often 640x360) costs far less to decode than the recorded one's
keyframes, and shows every frame, not one every second or two. The reader decodes every
frame (a P frame needs the ones before it; the parts of a frame sent as several packets are
joined first), examines at most `sample_fps` a second (scaled to 320 px grey by swscale),
and reconnects with backoff when the stream fails or stalls; while it is down the camera's
clips are examined from their files. Nothing it reads is recorded.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time

import av
import av.error

from edged.activity import DEFAULT_WIDTH
from edged.activity.examine import small_gray
from edged.backoff import full_jitter
from edged.logs import Redactor
from edged.sources.live_activity import MAX_SUB_GAP_S, LiveActivity
from edged.sources.rtsp_packets import FrameJoiner
from edged.sources.rtsp_session import ANALYZE_S, describe
from edged.sources.rtsp_values import CameraStats

log = logging.getLogger(__name__)

#: Frames examined a second: enough to see a figure cross in 3 s several times.
SAMPLE_FPS = 2.0


class SubStream:
    def __init__(
        self,
        live: LiveActivity,
        url: str,
        *,
        transport: str = "tcp",
        stall_timeout_s: float = 10.0,
        sample_fps: float = SAMPLE_FPS,
        width: int = DEFAULT_WIDTH,
    ) -> None:
        self._live = live
        self._url = url
        self.shown_url = Redactor()(url)
        self._options = {
            "rtsp_transport": transport,
            "timeout": str(int(stall_timeout_s * 1_000_000)),  # socket I/O, µs
            "analyzeduration": str(int(ANALYZE_S * 1_000_000)),
            "allowed_media_types": "video",  # its audio is of no use here
        }
        self._interval_s = 1.0 / sample_fps
        self._width = width
        self.frames = 0  # examined, since edged started

    def run(self, stop: threading.Event) -> None:
        """Blocking, until `stop`: read, reconnect after a failure."""
        failures = 0
        rng = random.Random()
        while not stop.is_set():
            reason = self._read(stop)
            self._live.substream_up(False)
            if stop.is_set():
                return
            failures += 1
            delay = full_jitter(failures, base_s=1.0, cap_s=30.0, rng=rng)
            log.warning(
                "activity sub-stream down camera=%s url=%s: %s; clips are examined from their"
                " files meanwhile; retrying in %.1fs",
                self._live.camera,
                self.shown_url,
                reason,
                delay,
            )
            stop.wait(delay)

    def _read(self, stop: threading.Event) -> str:
        try:
            container = av.open(self._url, options=self._options)
        except (av.error.FFmpegError, OSError) as exc:
            return describe(exc)
        try:
            if not container.streams.video:
                return "the stream has no video"
            stream = container.streams.video[0]
            decoder = stream.codec_context
            # A frame can come as several packets: the decoder takes each packet for a whole
            # frame, and the frames after a split one would be garbage (as in the recorder).
            joiner = FrameJoiner(CameraStats())
            clock = _SubClock(self._interval_s)
            up = False
            for packet in container.demux(stream):
                if stop.is_set():
                    return "edged is stopping"
                whole = joiner.push(packet) if packet.size else None
                if whole is None:
                    continue
                arrived_at = time.monotonic()
                for frame in decoder.decode(whole):
                    at = clock.place(frame.time, arrived_at)
                    if at is None:
                        continue
                    if not up:
                        self._live.substream_up(True)
                        up = True
                    self._live.substream_frame(small_gray(frame, self._width), at)
                    self.frames += 1
            return "the camera ended the stream"
        except (av.error.FFmpegError, OSError) as exc:
            return describe(exc)
        finally:
            container.close()


class _SubClock:
    """A sub-stream connection's frames on the clock of their arrivals: each frame's own
    timestamp plus the lowest arrival-minus-timestamp seen (the frame that came with the
    least delay), so that a reader that falls behind, or a decoder that holds frames, still
    places them where they were; two a second, on a fixed grid. A timestamp that goes back
    or leaps ahead starts both over."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._offset: float | None = None
        self._last_t: float | None = None
        self._next_t = -math.inf

    def place(self, t: float | None, arrived_at: float) -> float | None:
        """The frame's time (monotonic) if it is to be examined, else None."""
        if t is None:
            return None
        last, self._last_t = self._last_t, t
        if last is not None and not 0.0 <= t - last <= MAX_SUB_GAP_S:
            self._offset, self._next_t = None, -math.inf  # its clock jumped: start over
        offset = arrived_at - t
        self._offset = offset if self._offset is None else min(self._offset, offset)
        if t < self._next_t:
            return None
        # On a fixed grid, so that 2 a second from 5 fps stays 2 a second.
        if self._next_t == -math.inf:
            self._next_t = math.floor(t / self._interval_s) * self._interval_s
        while self._next_t <= t:
            self._next_t += self._interval_s
        return t + self._offset
