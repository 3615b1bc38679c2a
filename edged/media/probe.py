"""Checks a clip with PyAV before any byte is uploaded: is it a complete video, and within
the service's limits of size and duration?

Only video containers that cameras and NVRs write are accepted (MP4/MOV, Matroska/WebM,
MPEG-TS and MPEG-PS, AVI, FLV, Dahua's DAV), whatever the file is named: FFmpeg also opens
text as "video" (its tty demuxer), single images, image sequences and playlists, none of
which is a recording. The file is read through `open_regular` (edged/media/regular_files.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from edged.errors import EdgedError
from edged.media.mp4boxes import looks_like_mp4, mp4_incomplete_reason
from edged.media.regular_files import TRANSIENT_ERRNOS, NotRegularFile, open_regular

#: FFmpeg demuxer names of the containers accepted (one of a format's names must be here).
#: FFmpeg is told to try no other demuxer: a playlist or concat list would otherwise open
#: the files it names (another camera's recordings) while it is only being probed.
VIDEO_CONTAINERS = frozenset(
    {"mov", "mp4", "matroska", "webm", "mpegts", "mpeg", "avi", "flv", "dhav"}
)
_WHITELIST = {"format_whitelist": ",".join(sorted(VIDEO_CONTAINERS))}
_ACCEPTED = "edged accepts MP4/MOV, Matroska, MPEG-TS/PS, AVI, FLV and DAV recordings"


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


def probe_video(
    path: Path,
    *,
    max_bytes: int,
    max_duration_s: float,
    inside: Path | None = None,
    settled: bool = True,
) -> VideoInfo:
    """Blocking: run it in a thread. Raises ClipRejected with a reason a user can act on;
    OSError (the file vanished or is unreadable) passes through. `inside`: the folder the
    file must lie in; `settled`: the file has not changed for a while (see mp4boxes)."""
    try:
        fd, st = open_regular(path, inside=inside)
    except NotRegularFile as exc:
        raise ClipRejected(f"{path.name}: {exc}") from None
    with os.fdopen(fd, "rb") as handle:
        size = st.st_size
        if size > max_bytes:
            raise ClipRejected(
                f"{path.name}: {size} bytes is over the limit of {max_bytes} bytes"
                " (api.max_file_bytes)"
            )
        if size == 0:
            raise ClipRejected(f"{path.name}: empty file")
        if looks_like_mp4(handle.read(8)):
            reason = mp4_incomplete_reason(handle, size, settled=settled)
            if reason is not None:
                raise ClipRejected(f"{path.name}: incomplete MP4: {reason}")
        handle.seek(0)
        info = _probe(path.name, handle, size)
    if info.duration_s > max_duration_s:
        raise ClipRejected(
            f"{path.name}: {info.duration_s:.0f}s is over the limit of {max_duration_s:.0f}s"
            " (api.max_duration)"
        )
    return info


def _probe(name: str, handle: BinaryIO, size: int) -> VideoInfo:
    try:
        # A file object, not the path: FFmpeg picks the format from the content alone.
        with av.open(handle, "r", options=_WHITELIST, metadata_errors="ignore") as container:
            formats = set(container.format.name.split(","))
            if not formats & VIDEO_CONTAINERS:
                raise ClipRejected(
                    f"{name}: not a video container ({container.format.name}): {_ACCEPTED}"
                )
            if not container.streams.video:
                raise ClipRejected(f"{name}: no video stream")
            stream = container.streams.video[0]
            return VideoInfo(
                size=size,
                duration_s=_duration_s(container, stream),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                codec=stream.codec_context.name,
                title=container.metadata.get("title"),
            )
    except av.FFmpegError as exc:
        if exc.errno in TRANSIENT_ERRNOS:  # a read that failed, not a file that is bad
            raise OSError(exc.errno, exc.strerror or str(exc)) from exc
        reason = exc.strerror or str(exc)
        raise ClipRejected(f"{name}: not a readable video ({reason}): {_ACCEPTED}") from exc


def _duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float:
    if container.duration is not None:
        return container.duration / 1_000_000
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    raise ClipRejected("duration unknown: the file is incomplete or not a finished recording")
