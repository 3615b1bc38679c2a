"""Checks a clip with PyAV before any byte is uploaded: is it a complete video, and within
the service's limits of size and duration?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from edged.errors import EdgedError
from edged.mp4boxes import looks_like_mp4, mp4_incomplete_reason


class ClipRejected(EdgedError):
    """The file can never be accepted as it is (not a video, too big, too long)."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    size: int
    duration_s: float
    width: int
    height: int
    codec: str
    title: str | None


def probe_video(path: Path, *, max_bytes: int, max_duration_s: float) -> VideoInfo:
    """Blocking: run it in a thread. Raises ClipRejected with a reason a user can act on;
    OSError (the file vanished or is unreadable) passes through."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ClipRejected(
            f"{path.name}: {size} bytes is over the limit of {max_bytes} bytes (api.max_file_bytes)"
        )
    if size == 0:
        raise ClipRejected(f"{path.name}: empty file")
    with path.open("rb") as handle:
        if looks_like_mp4(handle.read(8)):
            reason = mp4_incomplete_reason(handle, size)
            if reason is not None:
                raise ClipRejected(f"{path.name}: incomplete MP4: {reason}")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ClipRejected(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            duration_s = _duration_s(container, stream)
            info = VideoInfo(
                size=size,
                duration_s=duration_s,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                codec=stream.codec_context.name,
                title=container.metadata.get("title"),
            )
    except av.FFmpegError as exc:
        raise ClipRejected(f"{path.name}: not a readable video ({exc})") from exc
    if duration_s > max_duration_s:
        raise ClipRejected(
            f"{path.name}: {duration_s:.0f}s is over the limit of {max_duration_s:.0f}s"
            " (api.max_duration)"
        )
    return info


def _duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float:
    if container.duration is not None:
        return container.duration / 1_000_000
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    raise ClipRejected("duration unknown: the file is incomplete or not a finished recording")
