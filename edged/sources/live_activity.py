"""Activity on a live RTSP stream: a camera with `upload: activity` examined as it records.

The camera's thread hands each video keyframe (a copy of its bytes, and its time in the
connection's stream) to `LiveActivity.keyframe`, which never waits: a worker thread of its own
decodes it alone (keyframes need no other frame), scales it and feeds the camera's one
`Detector`, whose background carries on from clip to clip. From that the segmenter asks, at
each keyframe, whether an event's post-roll has passed (`post_roll_passed`): then it cuts
there, and the event clip can be closed at once instead of at the next fixed cut. When a clip
is finished its activity is read back (`activity_of`) and the gate uses it instead of
examining the file again. A keyframe the worker could not take in time (a starved CPU) or
could not decode leaves a gap: a clip that overlaps one gets no live activity, and the gate
examines its file as it does a folder camera's.

With an activity sub-stream (`activity.rtsp`, a camera's low-resolution second stream, as
Frigate's detect role uses), the frames come from that stream instead
(edged/sources/live_substream.py), a few a second, and the recorded stream's keyframes only
tell how its clock maps onto the wall clock; a sub-stream frame is placed on the recorded
stream's clock by its own timestamp, anchored to the clock of its arrivals (monotonic, as the
recorded stream's keyframes are). A clip with a hole of more than `MAX_SUB_GAP_S` in the
sub-stream's frames gets no live activity.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import av
import av.error
from av.video.codeccontext import VideoCodecContext

from edged.activity import DEFAULT_WIDTH, ClipActivity, Detector, Sample, Settings
from edged.activity.detector import Gray
from edged.activity.examine import small_gray, summarise

log = logging.getLogger(__name__)

#: Keyframes waiting for the worker; beyond that the newest is dropped (and makes a gap).
QUEUE_SIZE = 8
#: Keyframes remembered for the clips still to be read back (an hour at one a second).
KEEP = 3600
#: A post-roll counts as passed this much early: timestamps jitter by a few ticks.
SLACK_S = 0.05
#: Sub-stream frames further apart than this (a drop, a reconnect) leave their clip unseen.
MAX_SUB_GAP_S = 2.0
#: How far the sub-stream may lag the recorded stream's latest keyframe and still count as
#: having seen the footage up to it (its own frame interval and the network's jitter).
SUB_LAG_S = 1.0


@dataclass(frozen=True, slots=True)
class _Codec:
    name: str
    extradata: bytes | None


@dataclass(frozen=True, slots=True)
class _Keyframe:
    data: bytes
    connection: int
    t: float  # stream seconds of its connection
    seen_at: float  # monotonic: the detector's clock, which goes on across connections


@dataclass(frozen=True, slots=True)
class _Seen:
    connection: int
    t: float
    sample: Sample | None  # None: not examined (dropped, or not decoded)


class LiveActivity:
    """One camera's live examination. `keyframe`, `connected` and `post_roll_passed` are for
    the camera's thread, `activity_of` for any other; `run` is the worker's body, and
    `substream_frame` the sub-stream reader's (with `substream=True`)."""

    def __init__(
        self,
        camera: str,
        settings: Settings,
        post_roll_s: float,
        *,
        substream: bool = False,
        width: int = DEFAULT_WIDTH,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.camera = camera
        self.substream = substream
        self._detector = Detector(settings)
        self._post_roll_s = post_roll_s
        self._width = width
        self._queue: queue.Queue[_Keyframe | _Codec | None] = queue.Queue(queue_size)
        self._changed = threading.Condition()
        self._connection = 0  # the camera thread's: the number of the current connection
        # All below under self._changed.
        self._seen: deque[_Seen] = deque()  # in the order handed in
        self._sent = 0  # keyframes handed in (taken or dropped)
        self._done = 0  # of those, examined or given up
        #: Where the last activity ended: the first quiet keyframe after an active one.
        self._quiet_since: tuple[int, float] | None = None
        self._active = False
        self._cut_for: tuple[int, float] | None = None  # the `quiet_since` already cut for
        #: With a sub-stream: wall minus stream seconds of the current connection (the lowest
        #: seen, as the segmenter's clock takes it), and the latest frame placed on it.
        self._offset: float | None = None
        self._seen_until = -math.inf
        self._substream_up = False  # its reader is connected: worth waiting for
        #: The latest keyframe forgotten (KEEP): a clip that started before it is not whole.
        self._forgotten: tuple[int, float] | None = None
        self._stopping = threading.Event()
        self.dropped = 0

    # -- the camera's thread ----------------------------------------------------------------

    def connected(self, codec_name: str, extradata: bytes | None) -> int:
        """A new connection, whose keyframes are decoded with this codec; returns its number
        (blocks only if the worker is far behind, which a connection's start can afford)."""
        with self._changed:
            self._connection += 1
            self._offset = None
            self._seen_until = -math.inf
        if not self.substream:
            self._queue.put(_Codec(codec_name, extradata))
        return self._connection

    def keyframe(self, data: bytes, t: float) -> None:
        """A keyframe `t` seconds into the current connection's stream."""
        if self.substream:
            # Monotonic, as the reader's: a step of the wall clock (NTP at boot) moves neither.
            offset = time.monotonic() - t
            with self._changed:
                self._offset = offset if self._offset is None else min(self._offset, offset)
            return
        keyframe = _Keyframe(data, self._connection, t, time.monotonic())
        with self._changed:
            self._sent += 1
        try:
            self._queue.put_nowait(keyframe)
        except queue.Full:
            self.dropped += 1
            self._note(keyframe, None)

    def post_roll_passed(self, now_t: float, clip_start_t: float) -> bool:
        """True once, at the first keyframe (at `now_t`, in the clip that started at
        `clip_start_t`, stream seconds) after activity that has been over for the post-roll,
        all of the footage before it examined: the clip should end here, so that its event
        can close.

        The gate knows activity by the second of each clip (edged/activity), so the end of
        the activity is taken as it will read it: rounded up to the clip's next whole second,
        or a whole second later when it ended in the clip before."""
        with self._changed:
            quiet = self._quiet_since
            if quiet is None or quiet == self._cut_for or self._active:
                return False
            connection, quiet_t = quiet
            if connection != self._connection:
                return False  # a new connection started a new clip already
            if quiet_t >= clip_start_t:
                # As edged/activity's per_second counts it: the seconds up to this sample.
                ended = clip_start_t + math.ceil(quiet_t - clip_start_t)
            else:  # the clip before ended at most at this one's start
                ended = min(quiet_t + 1.0, clip_start_t)
            if now_t < ended + self._post_roll_s - SLACK_S:
                return False
            # Every keyframe before this one examined: the last stands for the time up to
            # this one, so all the footage of the post-roll has been seen.
            if not self.substream and self._done < self._sent - 1:
                return False
            if self.substream and self._seen_until < now_t - SUB_LAG_S:
                return False
            self._cut_for = quiet
            return True

    # -- any thread -------------------------------------------------------------------------

    def activity_of(
        self, connection: int, start_t: float, duration_s: float, *, timeout_s: float
    ) -> ClipActivity | None:
        """Blocking: the activity of the clip of `connection` from `start_t` (stream seconds)
        for `duration_s`, once every keyframe handed in so far is examined (at most
        `timeout_s`); None if that took too long or a keyframe inside it was not examined."""
        end = start_t + duration_s
        deadline = time.monotonic() + timeout_s
        with self._changed:
            wanted = self._sent
            while not self._caught_up(connection, wanted, end):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            if self._forgotten is not None and self._forgotten >= (connection, start_t - SLACK_S):
                return None  # its first keyframes are no longer remembered
            inside = [
                seen
                for seen in self._seen
                if seen.connection == connection and start_t - SLACK_S <= seen.t < end
            ]
        samples = [seen.sample for seen in inside if seen.sample is not None]
        if not inside or len(samples) < len(inside):
            return None
        if self.substream:
            edges = [start_t, *(seen.t for seen in inside), end]
            if max(b - a for a, b in itertools.pairwise(edges)) > MAX_SUB_GAP_S:
                return None
        relative = [
            replace(sample, t_s=max(seen.t - start_t, 0.0))
            for seen, sample in zip(inside, samples, strict=True)
        ]
        return summarise(relative, duration_s)

    def _caught_up(self, connection: int, wanted: int, end: float) -> bool:
        if not self.substream:
            return self._done >= wanted
        if not self._substream_up or connection != self._connection:
            return True  # nothing more will come for it
        return self._seen_until >= end - SUB_LAG_S

    # -- the sub-stream reader -------------------------------------------------------------

    def substream_up(self, up: bool) -> None:
        with self._changed:
            self._substream_up = up
            self._changed.notify_all()

    def substream_frame(self, gray: Gray, at: float) -> None:
        """A sub-stream frame (small, grey) of the monotonic time `at` (its own timestamp on
        the clock of its arrivals): placed on the recorded stream's clock and examined here,
        on the reader's thread."""
        with self._changed:
            offset, connection = self._offset, self._connection
        if offset is None:
            return  # the recorded stream has no clock yet: nothing to place it on
        sample = self._detector.feed(gray, at)
        seen = _Seen(connection, at - offset, sample)
        with self._changed:
            if connection == self._connection:
                self._seen_until = max(self._seen_until, seen.t)
                self._remember(seen)

    # -- the worker -------------------------------------------------------------------------

    def stop(self) -> None:
        """The worker ends at its next keyframe, or at once when idle; never waits (it may
        be called on the event loop)."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def run(self) -> None:
        """The worker's body: until `stop`."""
        decoder: VideoCodecContext | None = None
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            if isinstance(item, _Codec):
                decoder = _decoder(item)
                continue
            sample = None
            if decoder is not None:
                try:
                    sample = self._examine(decoder, item)
                except (av.error.FFmpegError, ValueError) as exc:
                    log.debug("keyframe not examined camera=%s: %s", self.camera, exc)
            self._note(item, sample)

    def _examine(self, decoder: VideoCodecContext, keyframe: _Keyframe) -> Sample | None:
        frames = decoder.decode(av.Packet(keyframe.data))
        if not frames:  # a decoder that reorders (B-frames) holds it back: drain it
            frames = decoder.decode(None)
            decoder.flush_buffers()
        if not frames:
            return None
        # Its background adapts on the clock of arrival, which goes on across connections.
        return self._detector.feed(small_gray(frames[-1], self._width), keyframe.seen_at)

    def _note(self, keyframe: _Keyframe, sample: Sample | None) -> None:
        with self._changed:
            self._done += 1
            self._remember(_Seen(keyframe.connection, keyframe.t, sample))

    def _remember(self, seen: _Seen) -> None:
        """Under self._changed."""
        self._seen.append(seen)
        sample = seen.sample
        if sample is not None and sample.active:
            self._active = True
        elif sample is not None and self._active:
            self._active = False
            self._quiet_since = (seen.connection, seen.t)
        while len(self._seen) > KEEP:
            gone = self._seen.popleft()
            self._forgotten = max(self._forgotten or (0, -math.inf), (gone.connection, gone.t))
        self._changed.notify_all()


def _decoder(codec: _Codec) -> VideoCodecContext | None:
    try:
        decoder = av.CodecContext.create(codec.name, "r")
    except (av.error.FFmpegError, ValueError) as exc:
        log.warning("keyframes of codec %s cannot be decoded: %s", codec.name, exc)
        return None
    if not isinstance(decoder, VideoCodecContext):
        log.warning("keyframes of codec %s cannot be decoded: not a video codec", codec.name)
        return None
    if codec.extradata:
        decoder.extradata = codec.extradata
    decoder.thread_count = 1  # one keyframe at a time: threads would only add a frame's delay
    return decoder


class LiveFindings:
    """What the live examination found for each finished clip, by its file, until the gate
    takes it (on the loop). Bounded: a gate that stopped taking them cannot grow it for ever;
    a clip whose finding was dropped is examined from its file, as after a restart."""

    def __init__(self, limit: int = 4096) -> None:
        self._found: dict[Path, ClipActivity] = {}
        self._limit = limit

    def put(self, path: Path, found: ClipActivity) -> None:
        while len(self._found) >= self._limit:
            del self._found[next(iter(self._found))]
        self._found[path] = found

    def take(self, path: Path) -> ClipActivity | None:
        return self._found.pop(path, None)
