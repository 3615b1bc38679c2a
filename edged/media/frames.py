"""One JPEG frame of a clip at a given moment, decoded with PyAV.

Blocking (demux, decode, scale, encode): callers run it in a thread. The frame taken is the
one on screen at the moment asked for, i.e. the last frame that starts at or before it;
moments are seconds from the start of the clip, whatever the file's first timestamp is.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video

from edged.errors import EdgedError

MAX_WIDTH = 1280
JPEG_QUALITY = 5  # mjpeg quantiser, 2 (best) to 31: small files that still show a face
_EPSILON_S = 1e-3  # a moment named to the millisecond selects the frame starting there
_MAX_DECODED = 3000  # frames decoded after a seek: bounds a file with sparse keyframes


class SnapshotError(EdgedError):
    """No picture could be taken from a clip (missing, corrupt, no video)."""


@dataclass(frozen=True, slots=True)
class Picture:
    jpeg: bytes
    width: int
    height: int
    at_s: float  # where in the clip the frame is, seconds from its start


def clip_picture(path: Path, at_s: float | None, *, max_width: int = MAX_WIDTH) -> Picture:
    """The frame at `at_s` seconds into the clip (None: its middle), at most max_width wide."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SnapshotError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            first_s = _first_s(stream)
            length_s = _length_s(container, stream)
            wanted = at_s if at_s is not None else (length_s or 0.0) / 2
            if length_s is not None:
                wanted = min(wanted, length_s)
            frame = _frame_at(container, stream, first_s + max(0.0, wanted))
            jpeg, width, height = _encode(frame, max_width)
            return Picture(jpeg, width, height, round(float(frame.time or 0.0) - first_s, 3))
    except av.FFmpegError as exc:
        raise SnapshotError(f"cannot decode {path.name}: {exc}") from exc
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _first_s(stream: av.video.stream.VideoStream) -> float:
    """The file's first timestamp: NVR and RTSP recordings rarely start at zero."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _length_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _frame_at(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    target_s: float,
) -> av.VideoFrame:
    if stream.time_base is not None and target_s > 0:
        # To the keyframe at or before the moment; decoding goes on from there.
        container.seek(int(target_s / stream.time_base), stream=stream, backward=True)
    chosen: av.VideoFrame | None = None
    for count, frame in enumerate(container.decode(stream)):
        if frame.time is None:
            continue
        if frame.time > target_s + _EPSILON_S:
            chosen = chosen or frame  # the seek landed past the moment: the nearest after it
            break
        chosen = frame
        if count >= _MAX_DECODED:
            break
    if chosen is None:
        raise SnapshotError("no frame could be decoded")
    return chosen


def _encode(frame: av.VideoFrame, max_width: int) -> tuple[bytes, int, int]:
    width, height = frame.width, frame.height
    if width > max_width:
        height = max(2, round(height * max_width / width / 2) * 2)
        width = max_width
    codec = av.CodecContext.create("mjpeg", "w")
    assert isinstance(codec, av.video.codeccontext.VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 1)
    codec.qmin = codec.qmax = JPEG_QUALITY
    image = frame.reformat(width=width, height=height, format="yuvj420p", interpolation="AREA")
    packets = [*codec.encode(image), *codec.encode(None)]
    return b"".join(bytes(packet) for packet in packets), width, height
