"""Consecutive clips of one camera joined into one MP4, without transcoding (event clips).

The promise: `concat_clips(members, output, trim)` opens each member as the upload does (a
regular file, still the recording the ledger has, a video container:
edged/media/recording_files.py) and writes `output` (through a `.part` beside it, fsynced,
then renamed) with the video, and the audio when every member has the same, of each member in
order, each stream shifted to start where its last packet in the member before ended. `trim`
keeps the first member from a time and the last up to a time, cut at their keyframes so that
the footage kept covers that span (edged/media/keyframe_cut.py); `Joined` says how long the
footage kept is and how much of the first member was left out before it. Members whose video
differs (codec, size) cannot be joined without transcoding: that raises `ConcatError` and
writes nothing. Blocking (PyAV): run it in a worker thread.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.error

from edged.clip import Clip
from edged.errors import EdgedError
from edged.media.keyframe_cut import KeyframeCut
from edged.media.recording_files import FORMAT_OPTIONS, is_video_container, open_recording


class ConcatError(EdgedError):
    """The clips cannot be joined as they are; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Trim:
    """What of the members' footage to keep: from `start_s` in the first member, up to `end_s`
    in the last (seconds from each one's first keyframe); None keeps that end whole. The
    members between are always whole."""

    start_s: float | None = None
    end_s: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("start", self.start_s), ("end", self.end_s)):
            if value is not None and not math.isfinite(value):
                raise ConcatError(f"cannot cut an event clip at a {name} of {value}")


@dataclass(frozen=True, slots=True)
class Joined:
    path: Path
    duration_s: float  # of the footage kept
    size: int
    #: How much of the first member was left out before the footage kept.
    head_s: float = 0.0


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


def concat_clips(members: Sequence[Clip], output: Path, trim: Trim = Trim()) -> Joined:
    """Raises ConcatError, or RecordingChanged when a member's file is no longer its
    recording (edged/media/recording_files.py)."""
    if not members:
        raise ConcatError("nothing to join")
    part = output.with_name(output.name + ".part")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        total_s, head_s = _write(members, part, trim)
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
    return Joined(output, total_s, output.stat().st_size, head_s)


def _write(members: Sequence[Clip], part: Path, trim: Trim) -> tuple[float, float]:
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
            total_s = head_s = 0.0
            last = len(opened) - 1
            for index, (container, clip) in enumerate(zip(opened, members, strict=True)):
                cut = KeyframeCut(
                    container.streams.video[0],
                    container.streams.audio[0] if audio_out is not None else None,
                    trim.start_s if index == 0 else None,
                    trim.end_s if index == last else None,
                )
                _copy(container, cut, video_out, audio_out, next_dts, out)
                if index == 0 and trim.start_s is not None and cut.begin is None:
                    raise ConcatError(f"{clip.path.name}: no video keyframe to start from")
                total_s += cut.kept_s(_duration_s(container))
                if index == 0:
                    head_s = cut.head_s
        return total_s, head_s
    finally:
        for container in opened:
            container.close()
        for handle in files:
            handle.close()


def _copy(
    container: av.container.InputContainer,
    cut: KeyframeCut,  # which of the container's streams, and which of their packets
    video_out: av.stream.Stream,
    audio_out: av.stream.Stream | None,
    next_dts: dict[int, int],
    out: av.container.OutputContainer,
) -> None:
    streams = [stream for stream in (cut.video, cut.audio) if stream is not None]
    shifts: dict[int, int] = {}
    for packet in cut.packets(container.demux(*streams)):
        assert packet.dts is not None  # the cut leaves out the demuxer's flush packets
        target = video_out if packet.stream is cut.video else audio_out
        assert target is not None
        key = target.index
        if key not in shifts:  # this stream's first packet in this clip
            if key in next_dts:
                shifts[key] = next_dts[key] - packet.dts
            else:
                # The first clip: cut at its start, every stream moves back by as much (the
                # kept keyframe to 0, its audio in step); whole, it keeps its timestamps.
                head = cut.begin or Fraction(0)
                shifts[key] = -round(head / Fraction(packet.time_base))
        shift = shifts[key]
        packet.dts += shift
        if packet.pts is not None:
            packet.pts += shift
        next_dts[key] = max(
            next_dts.get(key, packet.dts), packet.dts + max(packet.duration or 1, 1)
        )
        packet.stream = target
        out.mux(packet)
