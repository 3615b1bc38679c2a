"""The clip examiner: a recording (a file) or a stream of PyAV frames in, its activity out.

The promise: `examine_file` and `examine_frames` are blocking and hold no event loop; call them
in a thread (PyAV releases the GIL while it decodes and scales, numpy while it compares large
arrays) or in a process. They return a `ClipActivity`, a small frozen value, or raise
`ExamineError` for a file PyAV cannot read, or `Stopped` when the stop event is set.

What is decoded (`Decode`): by default only keyframes (`skip_frame = NONKEY`): an H.264 P or B
frame cannot be decoded without all the frames it refers to, so "a few frames a second" still
decodes every frame, while keyframes (every 1-2 s from a camera) are decoded alone. Every
examined frame is scaled by swscale (C) to `width` pixels wide and grayscale before numpy sees
it. `Decode.ALL` decodes every frame and examines `sample_fps` of them: for streams with rare
keyframes, at a measured cost (bench/activity_day.py prints both).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import av.error

from edged.activity.detector import Detector, Gray, Sample, Settings, per_second
from edged.activity.zones import ActivityError

#: Wide enough for a person of a tenth of the frame's height to cover dozens of pixels, small
#: enough for numpy to compare a frame in about a millisecond.
DEFAULT_WIDTH = 320


class Decode(enum.Enum):
    KEYFRAMES = "keyframes"
    ALL = "all"


class ExamineError(ActivityError):
    """A recording that cannot be examined (unreadable, no video); the message names it."""


class Stopped(Exception):
    """The stop event was set during an examination."""


@dataclass(frozen=True)
class ClipActivity:
    """A clip's activity: `active` lists the active seconds from the clip's start."""

    seconds: float
    samples: int
    active: tuple[int, ...]
    peak_score: float
    peak_area: float

    @property
    def active_seconds(self) -> int:
        return len(self.active)

    @property
    def is_active(self) -> bool:
        return bool(self.active)


def summarise(samples: list[Sample], duration_s: float) -> ClipActivity:
    """Samples (with `t_s` from the clip's start) to a ClipActivity over `duration_s`."""
    seconds = per_second(samples, duration_s)
    return ClipActivity(
        seconds=duration_s,
        samples=len(samples),
        active=tuple(second.index for second in seconds if second.active),
        peak_score=max((sample.score for sample in samples), default=0.0),
        peak_area=max((sample.area for sample in samples), default=0.0),
    )


def examine_frames(
    frames: Iterable[av.VideoFrame],
    settings: Settings | None = None,
    *,
    detector: Detector | None = None,
    width: int = DEFAULT_WIDTH,
    sample_fps: float | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
) -> ClipActivity:
    """Examine decoded frames (an RTSP demuxer's, a file's) in order.

    `sample_fps` examines at most that many frames a second (the others are skipped before
    they are scaled); None examines each frame given. Pass the camera's `detector` to carry its
    background from one clip to the next; otherwise the first frame only sets the background.
    """
    detector = detector or Detector(settings)
    samples: list[Sample] = []
    start: float | None = None
    next_t = 0.0
    last_t = 0.0
    for frame in frames:
        if stop is not None and stop.is_set():
            raise Stopped
        t = _time_of(frame)
        if t is None:
            continue
        if start is None:
            start = t
        t -= start
        last_t = max(last_t, t)
        if sample_fps is not None:
            if t + 1e-6 < next_t:
                continue
            # On a fixed grid, so that 2 a second from 5 fps is 2 a second, not every third.
            while next_t <= t + 1e-6:
                next_t += 1.0 / sample_fps
        samples.append(detector.feed(small_gray(frame, width), t))
    if duration_s is None:
        # The last frame stands for a second at most (a keyframe for its group of pictures).
        duration_s = last_t + 1.0 if samples else 0.0
    return summarise(samples, duration_s)


def examine_file(
    path: Path | BinaryIO,
    settings: Settings | None = None,
    *,
    options: Mapping[str, str] | None = None,
    decode: Decode = Decode.KEYFRAMES,
    detector: Detector | None = None,
    width: int = DEFAULT_WIDTH,
    sample_fps: float = 2.0,
    stop: threading.Event | None = None,
) -> ClipActivity:
    """Examine a recording file (a path, or a file already opened); blocking. `options` go
    to FFmpeg's open (e.g. a format whitelist)."""
    name = path if isinstance(path, Path) else getattr(path, "name", "recording")
    try:
        source = str(path) if isinstance(path, Path) else path
        with av.open(source, "r", options=dict(options or {})) as container:
            if not container.streams.video:
                raise ExamineError(f"{name}: no video stream")
            stream = container.streams.video[0]
            if decode is Decode.KEYFRAMES:
                stream.codec_context.skip_frame = "NONKEY"
            duration_s = _duration_of(container, stream)
            return examine_frames(
                container.decode(stream),
                settings,
                detector=detector,
                width=width,
                sample_fps=None if decode is Decode.KEYFRAMES else sample_fps,
                duration_s=duration_s,
                stop=stop,
            )
    except av.error.FFmpegError as error:
        raise ExamineError(f"{name}: cannot be decoded ({error})") from error


def _time_of(frame: av.VideoFrame) -> float | None:
    if frame.time is not None:
        return float(frame.time)
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    return None


def small_gray(frame: av.VideoFrame, width: int) -> Gray:
    # Even height keeps swscale on its fast paths; AREA averages, which also lowers the noise.
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    small = frame.reformat(width=width, height=height, format="gray", interpolation="AREA")
    # format="gray" makes to_ndarray give uint8, whatever its declared union says.
    return small.to_ndarray()  # type: ignore[return-value]


def _duration_of(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None
