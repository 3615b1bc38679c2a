"""Consecutive clips of one camera joined into one MP4, without transcoding (event clips).

The promise: `concat_clips(members, output)` opens each member as the upload does (a regular
file, still the recording the ledger has, a video container: edged/media/recording_files.py)
and writes `output` (through a `.part` beside it, fsynced, then renamed) with the video, and
the audio when every member has the same, of each member in order, each stream shifted to
start where its last packet in the member before ended. Members whose video differs (codec,
size) cannot be joined without transcoding: that raises `ConcatError` and writes nothing.
Blocking (PyAV): run it in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import av.error

from edged.clip import Clip
from edged.errors import EdgedError
from edged.media.recording_files import FORMAT_OPTIONS, is_video_container, open_recording


class ConcatError(EdgedError):
    """The clips cannot be joined as they are; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Joined:
    path: Path
    duration_s: float
    size: int


def _shape(container: av.container.InputContainer) -> tuple[object, ...]:
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    video_shape = (video.codec_context.name, video.codec_context.width, video.codec_context.height)
    audio_shape = None if audio is None else (audio.codec_context.name, audio.codec_context.rate)
    return video_shape, audio_shape


def _duration_s(container: av.container.InputContainer) -> float:
    if container.duration is not None:
        return float(container.duration / av.time_base)
    video = container.streams.video[0]
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    raise ConcatError(f"{container.name}: its length is unknown")


def concat_clips(members: Sequence[Clip], output: Path) -> Joined:
    """Raises ConcatError, or RecordingChanged when a member's file is no longer its
    recording (edged/media/recording_files.py)."""
    if not members:
        raise ConcatError("nothing to join")
    part = output.with_name(output.name + ".part")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        total_s = _write(members, part)
        with open(part, "rb") as written:
            os.fsync(written.fileno())
        os.replace(part, output)
        fd = os.open(output.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except av.error.FFmpegError as exc:
        part.unlink(missing_ok=True)
        raise ConcatError(f"joining {len(members)} clips into {output.name}: {exc}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return Joined(output, total_s, output.stat().st_size)


def _write(members: Sequence[Clip], part: Path) -> float:
    files: list[BinaryIO] = []
    opened: list[av.container.InputContainer] = []
    try:
        for clip in members:
            files.append(open_recording(clip))
            opened.append(av.open(files[-1], "r", options=FORMAT_OPTIONS))
        for container, clip in zip(opened, members, strict=True):
            if not is_video_container(container.format.name):
                raise ConcatError(f"{clip.path.name}: not a video container")
            if not container.streams.video:
                raise ConcatError(f"{clip.path.name}: no video stream")
        shapes = {_shape(container) for container in opened}
        if len({video for video, _ in shapes}) > 1:
            raise ConcatError("the clips' video differs (codec or size): not joined")
        with_audio = len(shapes) == 1 and next(iter(shapes))[1] is not None
        first = opened[0]
        with av.open(str(part), "w", format="mp4") as out:
            video_out = out.add_stream_from_template(first.streams.video[0])
            audio_out = out.add_stream_from_template(first.streams.audio[0]) if with_audio else None
            # Per output stream: where its next packet goes (the last dts plus its duration),
            # in the input's time base. Each stream of each clip is shifted to start there, so
            # timestamps only go forward even when a clip's audio starts before its video
            # (AAC's priming) or ends after it.
            next_dts: dict[int, int] = {}
            total_s = 0.0
            for container in opened:
                _copy(container, video_out, audio_out, next_dts, out)
                total_s += _duration_s(container)
        return total_s
    finally:
        for container in opened:
            container.close()
        for handle in files:
            handle.close()


def _copy(
    container: av.container.InputContainer,
    video_out: av.stream.Stream,
    audio_out: av.stream.Stream | None,
    next_dts: dict[int, int],
    out: av.container.OutputContainer,
) -> None:
    video_in = container.streams.video[0]
    audio_in = container.streams.audio[0] if audio_out is not None else None
    streams = [stream for stream in (video_in, audio_in) if stream is not None]
    shifts: dict[int, int] = {}
    for packet in container.demux(*streams):
        if packet.dts is None or packet.size == 0:
            continue  # the demuxer's flush packet
        target = video_out if packet.stream is video_in else audio_out
        assert target is not None
        key = target.index
        if key not in shifts:  # this stream's first packet in this clip
            shifts[key] = next_dts.get(key, packet.dts) - packet.dts
        shift = shifts[key]
        packet.dts += shift
        if packet.pts is not None:
            packet.pts += shift
        next_dts[key] = max(
            next_dts.get(key, packet.dts), packet.dts + max(packet.duration or 1, 1)
        )
        packet.stream = target
        out.mux(packet)
