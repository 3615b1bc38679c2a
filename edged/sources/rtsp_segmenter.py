"""Cuts one RTSP connection's packets into contiguous clips; blocking, on the camera's thread.

A clip starts at a video keyframe and ends at the first keyframe at or after `clip_seconds`,
which starts the next clip: nothing is lost or repeated between clips. Audio is routed by
its timestamp, so the audio packets that belong before a cut still go into the clip that
ends there. Timestamps start at zero in each clip and only go forward: missing or
backwards ones are repaired (or the packet dropped), and counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av

from edged.sources.rtsp_audio import AacTranscoder
from edged.sources.rtsp_files import new_clip_path, part_of
from edged.sources.rtsp_writer import ClipWriter, StreamPlan

log = logging.getLogger(__name__)

#: The previous clip stays open this long (stream time) after a cut for its late audio.
AUDIO_GRACE_S = 1.0
#: Smaller steps backwards are repaired; bigger jumps mean the camera restarted its clock.
MAX_BACKWARDS_S = 1.0
MAX_FORWARD_S = 10.0
#: Wall-clock times are chained from clip to clip; re-anchored if they drift further apart.
MAX_DRIFT_S = 1.0
#: Audio waits for the video to catch up at most this long (stream time).
MAX_AUDIO_AHEAD_S = 2.0


@dataclass
class CameraStats:
    """Counters of one camera since edged started (read by status reports and the bench)."""

    packets: int = 0
    repaired: int = 0  # missing or backwards timestamps fixed
    dropped: int = 0  # packets without any timestamp
    merged: int = 0  # parts of one frame that came as separate packets
    waiting: int = 0  # packets before a connection's first keyframe
    resyncs: int = 0  # timestamp jumps that started a new clip
    clips: int = 0
    connects: int = 0
    outages: int = 0


@dataclass(frozen=True, slots=True)
class FinishedClip:
    """A closed `.part`, ready to be made durable, renamed and put in the ledger."""

    camera: str
    part: Path
    final: Path
    start: datetime  # UTC
    duration_s: float
    partial: bool  # ended by a lost connection, not by a cut
    damaged: bool = False  # the muxer failed while closing: recover it instead


@dataclass(frozen=True, slots=True)
class _Audio:
    t: float  # stream seconds
    pts: int
    dts: int
    packet: av.Packet


@dataclass
class _Clip:
    writer: ClipWriter
    final: Path
    start_t: float  # stream seconds of the first keyframe
    video_offset: int  # in the video time base
    audio_offset: int  # in the audio time base
    start_wall: float
    first: bool  # first clip of the connection: its wall start is refined when it ends
    end_t: float = 0.0


def _join(head: av.Packet, tail: av.Packet, stamps: av.Packet) -> av.Packet:
    joined = av.Packet(bytes(head) + bytes(tail))
    joined.pts, joined.dts, joined.time_base = stamps.pts, stamps.dts, head.time_base
    joined.duration = stamps.duration
    joined.is_keyframe = head.is_keyframe or tail.is_keyframe
    return joined


def parameter_sets(codec: str, data: bytes) -> bytes | None:
    """The SPS/PPS (and VPS) NAL units of an Annex B keyframe, for cameras that send them
    in-band only; MP4 needs them in the header."""
    wanted = {"h264": {7, 8}, "hevc": {32, 33, 34}}.get(codec)
    if not wanted:
        return None
    units = [u for u in data.split(b"\x00\x00\x01") if u]
    found = []
    for unit in units:
        kind = unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F
        if kind in wanted:
            found.append(b"\x00\x00\x00\x01" + unit.rstrip(b"\x00"))
    return b"".join(found) or None


class Segmenter:
    def __init__(
        self,
        camera: str,
        camera_dir: Path,
        plan: StreamPlan,
        clip_seconds: float,
        on_clip: Callable[[FinishedClip], None],
        stats: CameraStats,
        *,
        on_streaming: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.camera = camera
        self._dir = camera_dir
        self._plan = plan
        self._clip_s = clip_seconds
        self._on_clip = on_clip
        self._on_streaming = on_streaming
        self.stats = stats
        self._clock = clock
        self._video = plan.video.index
        self._audio = plan.audio.index if plan.audio is not None else None
        self._aac = AacTranscoder(plan.audio) if plan.audio and plan.transcode_audio else None
        # Time bases as floats for the per-packet work (Fractions cost more than the rest).
        self._video_tb = plan.video.time_base or Fraction(1, 90000)
        self._audio_tb = Fraction(1, 1)
        if self._aac is not None:
            self._audio_tb = self._aac.time_base
        elif plan.audio is not None and plan.audio.time_base is not None:
            self._audio_tb = plan.audio.time_base
        self._video_s = float(self._video_tb)
        self._audio_s = float(self._audio_tb)
        self._clip: _Clip | None = None
        self._closing: _Clip | None = None
        self._held: av.Packet | None = None
        self._ahead: deque[_Audio] = deque()
        self._last_dts: dict[str, int] = {}
        self._offset: float | None = None  # wall minus stream seconds, lowest seen
        self._last_t: float | None = None
        self._video_end = 0.0
        self._frame_s = 0.0
        self.streaming = False

    # -- packets in ---------------------------------------------------------------------

    def feed(self, packet: av.Packet) -> None:
        self.stats.packets += 1
        index = packet.stream.index
        if index == self._video:
            self._feed_video(packet)
        elif index == self._audio:
            if self._aac is None:
                self._audio_packet(packet)
                return
            for aac in self._aac.feed(packet):
                self._audio_packet(aac)

    def _feed_video(self, packet: av.Packet) -> None:
        """Holds one packet back: parts of one frame that arrive as separate packets (no
        timestamp yet, or the same one) are joined, or the muxer would see two frames."""
        held = self._held
        if held is None:
            self._held = packet
        elif held.dts is None and held.pts is None:
            self._held = _join(held, packet, packet)
            self.stats.merged += 1
        elif packet.dts is not None and packet.dts == held.dts:
            self._held = _join(held, packet, held)
            self.stats.merged += 1
        else:
            self._held = packet
            self._video_packet(held)

    def _video_packet(self, packet: av.Packet) -> None:
        tb = self._video_s
        dts = self._repair("video", packet, tb)
        if dts is None:
            return
        pts = packet.pts if packet.pts is not None and packet.pts >= dts else dts
        t = pts * tb
        now = self._clock()
        self._offset = now - t if self._offset is None else min(self._offset, now - t)
        if self._last_t is not None and t > self._last_t:
            self._frame_s = t - self._last_t
        self._last_t = t
        self._video_end = t + (packet.duration * tb if packet.duration else self._frame_s)
        clip = self._clip
        if clip is None:
            if not packet.is_keyframe:
                self.stats.waiting += 1
                return
            clip = self._open(packet, pts, dts, t, None)
        elif packet.is_keyframe and t - clip.start_t >= self._clip_s - self._frame_s / 2:
            # Half a frame of slack: RTP clocks jitter by a few ticks around the keyframe.
            clip = self._cut(packet, pts, dts, t, clip)
        elif self._closing is not None and t >= clip.start_t + AUDIO_GRACE_S:
            self._finish_closing()
        offset = clip.video_offset
        clip.writer.video(packet, pts - offset, dts - offset, t - clip.start_t)
        self._release_audio(t)

    def _audio_packet(self, packet: av.Packet) -> None:
        """Audio ahead of the video waits: the next video packet may be the keyframe that
        starts a new clip, and audio from that instant on belongs to that clip."""
        tb = self._audio_s
        dts = self._repair("audio", packet, tb)
        if dts is None:
            return
        pts = packet.pts if packet.pts is not None and packet.pts >= dts else dts
        t = pts * tb
        if self._last_t is not None and abs(t - self._last_t) > MAX_FORWARD_S:
            self.stats.dropped += 1  # on another clock than the video (mid-jump)
            return
        self._ahead.append(_Audio(t, pts, dts, packet))
        self._release_audio(self._last_t if self._last_t is not None else -math.inf)

    def _release_audio(self, before: float) -> None:
        ahead = self._ahead
        while ahead and (
            ahead[0].t < before
            or ahead[-1].t - ahead[0].t > MAX_AUDIO_AHEAD_S  # the video has stopped coming
        ):
            self._route_audio(ahead.popleft())

    def _route_audio(self, audio: _Audio) -> None:
        closing = self._closing
        if closing is not None:
            if audio.t < closing.end_t:
                offset = closing.audio_offset
                closing.writer.audio(audio.packet, audio.pts - offset, audio.dts - offset)
                return
            self._finish_closing()
        clip = self._clip
        if clip is None or audio.pts < clip.audio_offset:
            self.stats.waiting += 1
            return
        offset = clip.audio_offset
        clip.writer.audio(audio.packet, audio.pts - offset, audio.dts - offset)

    def _repair(self, kind: str, packet: av.Packet, tb: float) -> int | None:
        """The packet's DTS, made to go forward; None (drop it) when it has no timestamp.
        A jump of the video's clock starts a new clip; the audio follows the video."""
        dts = packet.dts
        if dts is None:
            if packet.pts is None:
                self.stats.dropped += 1
                return None
            dts = packet.pts
            self.stats.repaired += 1
        last = self._last_dts.get(kind)
        if last is not None and (
            (last - dts) * tb > MAX_BACKWARDS_S or (dts - last) * tb > MAX_FORWARD_S
        ):
            if kind == "video":
                self._resync((dts - last) * tb)
        elif last is not None and dts <= last:
            dts = last + 1
            self.stats.repaired += 1
        self._last_dts[kind] = dts
        return dts

    def _resync(self, jump_s: float) -> None:
        log.warning(
            "timestamps jumped camera=%s clip=%s by %.1fs: starting a new clip at the next"
            " keyframe",
            self.camera,
            self._clip.final.name if self._clip else "-",
            jump_s,
        )
        self.stats.resyncs += 1
        self._end_current(partial=False)
        self._last_dts.pop("video", None)
        self._offset = self._last_t = None
        self._video_end = 0.0

    # -- clips out ----------------------------------------------------------------------

    def _open(
        self, packet: av.Packet, pts: int, dts: int, start_t: float, previous: _Clip | None
    ) -> _Clip:
        assert self._offset is not None
        start_wall = self._offset + start_t
        if previous is not None:
            chained = previous.start_wall + (start_t - previous.start_t)
            if abs(chained - start_wall) <= MAX_DRIFT_S:
                start_wall = chained
        start = datetime.fromtimestamp(start_wall, UTC)
        final = new_clip_path(self._dir, start)
        writer = ClipWriter(part_of(final), self._plan, start, self._aac)
        if not self._plan.video.codec_context.extradata:
            found = parameter_sets(self._plan.video.codec_context.name, bytes(packet))
            if found:
                writer.set_video_extradata(found)
        audio_offset = math.floor(pts * self._video_tb / self._audio_tb)
        clip = _Clip(writer, final, start_t, dts, audio_offset, start_wall, previous is None)
        self._clip = clip
        if not self.streaming:
            self.streaming = True
            self._on_streaming()
        log.debug("clip started camera=%s clip=%s", self.camera, final.name)
        return clip

    def _cut(self, packet: av.Packet, pts: int, dts: int, t: float, clip: _Clip) -> _Clip:
        self._finish_closing()
        clip.end_t = t
        if clip.first and self._offset is not None:
            clip.start_wall = self._offset + clip.start_t  # the estimate has settled by now
        self._closing = clip
        following = self._open(packet, pts, dts, t, clip)
        if self._audio is None:
            self._finish_closing()
        return following

    def _finish_closing(self) -> None:
        clip, self._closing = self._closing, None
        if clip is not None:
            self._close(clip, partial=False)

    def _end_current(self, *, partial: bool) -> None:
        try:
            self._release_audio(math.inf)
        except (av.FFmpegError, OSError) as exc:
            # A full or failing disk: the audio still waiting is lost, but the clips must
            # still be closed and handed on (or the error would end the camera's source).
            log.warning("last audio lost camera=%s: %s", self.camera, exc)
            self._ahead.clear()
        self._finish_closing()
        clip, self._clip = self._clip, None
        if clip is not None:
            clip.end_t = max(self._video_end, clip.start_t)
            if clip.first and self._offset is not None:
                clip.start_wall = self._offset + clip.start_t
            self._close(clip, partial=partial)

    def _close(self, clip: _Clip, *, partial: bool) -> None:
        damaged = False
        try:
            clip.writer.close()
        except (av.FFmpegError, OSError) as exc:
            log.error(
                "closing clip failed camera=%s clip=%s: %s", self.camera, clip.final.name, exc
            )
            damaged = True
        self.stats.clips += 1
        start = datetime.fromtimestamp(clip.start_wall, UTC)
        duration = clip.end_t - clip.start_t
        self._on_clip(
            FinishedClip(
                self.camera, clip.writer.part, clip.final, start, duration, partial, damaged
            )
        )

    def finish(self) -> None:
        """The connection ended: the clip in progress is closed and handed on, short."""
        held, self._held = self._held, None
        try:
            if held is not None and (held.dts is not None or held.pts is not None):
                self._video_packet(held)
        except (av.FFmpegError, OSError) as exc:
            log.warning("last packet lost camera=%s: %s", self.camera, exc)
        self._end_current(partial=True)
