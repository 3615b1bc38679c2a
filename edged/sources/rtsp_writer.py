"""One RTSP clip on disk: a fragmented MP4 `.part` that stays playable while it grows.

Video is copied as it came (never transcoded). Audio is copied when MP4 takes the codec
(AAC, Opus, MP3); otherwise (G.711 and the like) the connection's AacTranscoder turns it
into AAC first. Blocking: runs on the camera's own thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from edged.sources.rtsp_audio import AacTranscoder
from edged.sources.rtsp_files import make_dirs

#: A fragment at every keyframe and at least every second: a crash or a power cut loses at
#: most the fragment in memory. `flush_packets` hands each finished fragment to the kernel.
FRAGMENTED_MP4 = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "frag_duration": "1000000",
    "flush_packets": "1",
}
#: How often (stream time) what the kernel has of a `.part` is forced to disk.
SYNC_EVERY_S = 1.0
#: Where the clip's wall-clock start is kept inside the file (read back by recovery).
START_TAG = "edged-start="


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """Which input streams go into clips, and how."""

    video: VideoStream
    audio: AudioStream | None
    transcode_audio: bool

    @classmethod
    def choose(cls, video: VideoStream, audio: AudioStream | None, mode: str) -> StreamPlan:
        if audio is None or mode == "drop":
            return cls(video, None, False)
        name = audio.codec_context.name
        return cls(video, audio, name not in _mp4_codecs())

    def describe(self) -> str:
        video = self.video.codec_context.name
        if self.audio is None:
            return f"video {video} copied, no audio"
        audio = self.audio.codec_context.name
        how = "transcoded to aac" if self.transcode_audio else "copied"
        return f"video {video} copied, audio {audio} {how}"


def _mp4_codecs() -> set[str]:
    with av.open(os.devnull, "w", format="mp4") as probe:
        return set(probe.supported_codecs)


class ClipWriter:
    """Packets handed in carry timestamps relative to the clip start."""

    def __init__(
        self, part: Path, plan: StreamPlan, start: datetime, aac: AacTranscoder | None
    ) -> None:
        make_dirs(part.parent)
        self.part = part
        self._container = av.open(str(part), "w", format="mp4", options=FRAGMENTED_MP4)
        self._container.metadata["creation_time"] = start.isoformat()
        self._container.metadata["comment"] = START_TAG + start.isoformat()
        self._video = self._container.add_stream_from_template(plan.video)
        self._audio: av.stream.Stream | None = None
        if aac is not None:
            # Opened as an encoder only for its header; the packets come from the
            # connection's transcoder.
            stream = self._container.add_stream("aac", rate=aac.rate)
            stream.codec_context.layout = aac.layout
            stream.codec_context.time_base = aac.time_base
            self._audio = stream
        elif plan.audio is not None:
            self._audio = self._container.add_stream_from_template(plan.audio)
        self._fd: int | None = None  # for fsync; the muxer creates the file with its header
        self._synced_at = 0.0

    def set_video_extradata(self, extradata: bytes) -> None:
        """For cameras that send their parameter sets in-band only; before the first packet."""
        if self._fd is None:
            self._video.codec_context.extradata = extradata

    def video(self, packet: av.Packet, pts: int, dts: int, seconds: float) -> None:
        """`seconds`: where the packet is in the clip, which paces the fsyncs."""
        packet.pts, packet.dts = pts, dts
        packet.stream = self._video
        self._mux(packet)
        if seconds - self._synced_at >= SYNC_EVERY_S and self._fd is not None:
            # Only what the muxer already flushed (whole fragments) is on its way to disk;
            # the fsync bounds what a power cut can take to the fragment in memory.
            os.fsync(self._fd)
            self._synced_at = seconds

    def audio(self, packet: av.Packet, pts: int, dts: int) -> None:
        if self._audio is not None:
            packet.pts, packet.dts = pts, dts
            packet.stream = self._audio
            self._mux(packet)

    def _mux(self, packet: av.Packet) -> None:
        self._container.mux(packet)
        if self._fd is None:
            self._fd = os.open(self.part, os.O_RDONLY)

    def close(self) -> None:
        """Finish the file (trailer) and fsync it; the caller renames it."""
        try:
            self._container.close()
            if self._fd is not None:
                os.fsync(self._fd)
        finally:
            self._release()

    def abandon(self) -> None:
        """Close after an error, keeping what was written (recovery picks the part up)."""
        try:
            self._container.close()
        except (av.FFmpegError, OSError):
            pass
        finally:
            self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_start(path: Path, fallback: datetime) -> datetime:
    """Blocking: the wall-clock start a clip file carries, or `fallback`."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            comment = container.metadata.get("comment", "")
    except (av.FFmpegError, OSError):
        return fallback
    if comment.startswith(START_TAG):
        try:
            return datetime.fromisoformat(comment.removeprefix(START_TAG))
        except ValueError:
            pass
    return fallback
