"""Consecutive clips of one camera joined into one MP4, without transcoding (event clips).

The promise: `concat_clips(inputs, output)` writes `output` (through a `.part` beside it,
fsynced, then renamed) with the video, and the audio when every input has the same, of each
input in order, their timestamps shifted so that each input starts where the one before it
ended. Inputs whose video differs (codec, size) cannot be joined without transcoding: that
raises `ConcatError` and writes nothing. Blocking (PyAV): run it in a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from edged.errors import EdgedError


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


def concat_clips(inputs: list[Path], output: Path) -> Joined:
    if not inputs:
        raise ConcatError("nothing to join")
    part = output.with_name(output.name + ".part")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        total_s = _write(inputs, part)
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
        raise ConcatError(f"joining {len(inputs)} clips into {output.name}: {exc}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return Joined(output, total_s, output.stat().st_size)


def _write(inputs: list[Path], part: Path) -> float:
    opened = [av.open(str(path)) for path in inputs]
    try:
        for container, path in zip(opened, inputs, strict=True):
            if not container.streams.video:
                raise ConcatError(f"{path.name}: no video stream")
        shapes = {_shape(container) for container in opened}
        if len({video for video, _ in shapes}) > 1:
            raise ConcatError("the clips' video differs (codec or size): not joined")
        with_audio = len(shapes) == 1 and next(iter(shapes))[1] is not None
        first = opened[0]
        with av.open(str(part), "w", format="mp4") as out:
            video_out = out.add_stream_from_template(first.streams.video[0])
            audio_out = out.add_stream_from_template(first.streams.audio[0]) if with_audio else None
            offset_s = 0.0
            for container in opened:
                _copy(container, out, video_out, audio_out, offset_s)
                offset_s += _duration_s(container)
        return offset_s
    finally:
        for container in opened:
            container.close()


def _copy(
    container: av.container.InputContainer,
    out: av.container.OutputContainer,
    video_out: av.stream.Stream,
    audio_out: av.stream.Stream | None,
    offset_s: float,
) -> None:
    video_in = container.streams.video[0]
    audio_in = container.streams.audio[0] if audio_out is not None else None
    streams = [stream for stream in (video_in, audio_in) if stream is not None]
    for packet in container.demux(*streams):
        if packet.dts is None or packet.size == 0:
            continue  # the demuxer's flush packet
        target = video_out if packet.stream is video_in else audio_out
        assert target is not None and packet.time_base is not None
        shift = round(Fraction(offset_s).limit_denominator(1_000_000) / packet.time_base)
        packet.dts += shift
        if packet.pts is not None:
            packet.pts += shift
        packet.stream = target
        out.mux(packet)
