"""Cuts one RTSP connection's packets into contiguous clips; blocking, on the camera's thread.

A clip starts at a video keyframe and ends at the first keyframe at or after `clip_seconds`,
which starts the next clip: nothing is lost or repeated between clips. A camera examined live
(`upload: activity`, edged/sources/live_activity.py) sees every keyframe, and a clip also ends
at the first keyframe after an event's post-roll has passed, so the event closes there.
Audio is routed by its timestamp, so the audio packets that belong before a cut still go into
the clip that ends there. Timestamps start at zero in each clip and only go forward: missing or
backwards ones are repaired (or the packet dropped), and counted (`rtsp_time`).
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

from edged.sources.live_activity import LiveActivity
from edged.sources.rtsp_audio import AacTranscoder
from edged.sources.rtsp_files import new_clip_path, part_of
from edged.sources.rtsp_packets import FrameJoiner, parameter_sets
from edged.sources.rtsp_time import MAX_FORWARD_S, StreamTime
from edged.sources.rtsp_values import CameraStats, FinishedClip, StreamSpan
from edged.sources.rtsp_writer import ClipWriter, StreamPlan

log = logging.getLogger(__name__)

#: The previous clip stays open this long (stream time) after a cut for its late audio.
AUDIO_GRACE_S = 1.0
#: Wall-clock times are chained from clip to clip; re-anchored if they drift further apart.
MAX_DRIFT_S = 1.0
#: Audio waits for the video to catch up at most this long (stream time).
MAX_AUDIO_AHEAD_S = 2.0


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
        live: LiveActivity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.camera = camera
        self._live = live
        self._dir = camera_dir
        self._plan = plan
        self._clip_s = clip_seconds
        self._on_clip = on_clip
        self._on_streaming = on_streaming
        self.stats = stats
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
        self._frames = FrameJoiner(stats)
        self._time = StreamTime(stats, self._resync, clock)
        self._ahead: deque[_Audio] = deque()
        self.streaming = False
        self._connection = 0  # the live examination's number for this stream's clock
        self._new_clock()

    # -- packets in ---------------------------------------------------------------------

    def feed(self, packet: av.Packet) -> None:
        self.stats.packets += 1
        index = packet.stream.index
        if index == self._video:
            whole = self._frames.push(packet)
            if whole is not None:
                self._video_packet(whole)
        elif index == self._audio:
            if self._aac is None:
                self._audio_packet(packet)
                return
            for aac in self._aac.feed(packet):
                self._audio_packet(aac)

    def _video_packet(self, packet: av.Packet) -> None:
        tb = self._video_s
        dts = self._time.repair("video", packet, tb)
        if dts is None:
            return
        pts = packet.pts if packet.pts is not None and packet.pts >= dts else dts
        t = pts * tb
        self._time.video_at(t, (packet.duration or 0) * tb)
        clip = self._clip
        live = self._live
        if live is not None and packet.is_keyframe:
            live.keyframe(bytes(packet), t)
        if clip is None:
            if not packet.is_keyframe:
                self.stats.waiting += 1
                return
            clip = self._open(packet, pts, dts, t, None)
        elif packet.is_keyframe and (
            # Half a frame of slack: RTP clocks jitter by a few ticks around the keyframe.
            t - clip.start_t >= self._clip_s - self._time.frame_s / 2
            or (live is not None and live.post_roll_passed(t, clip.start_t))
        ):
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
        dts = self._time.repair("audio", packet, tb)
        if dts is None:
            return
        pts = packet.pts if packet.pts is not None and packet.pts >= dts else dts
        t = pts * tb
        last_t = self._time.last_t
        if last_t is not None and abs(t - last_t) > MAX_FORWARD_S:
            self.stats.dropped += 1  # on another clock than the video (mid-jump)
            return
        self._ahead.append(_Audio(t, pts, dts, packet))
        self._release_audio(last_t if last_t is not None else -math.inf)

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
        self._time.restart_video()
        self._new_clock()

    def _new_clock(self) -> None:
        """Stream times start over (a connection, a jump): the live examination tells them
        apart by a new number."""
        if self._live is not None:
            video = self._plan.video.codec_context
            self._connection = self._live.connected(video.name, video.extradata)

    # -- clips out ----------------------------------------------------------------------

    def _open(
        self, packet: av.Packet, pts: int, dts: int, start_t: float, previous: _Clip | None
    ) -> _Clip:
        offset = self._time.offset
        assert offset is not None
        start_wall = offset + start_t
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
        offset = self._time.offset
        if clip.first and offset is not None:
            clip.start_wall = offset + clip.start_t  # the estimate has settled by now
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
            clip.end_t = max(self._time.video_end, clip.start_t)
            offset = self._time.offset
            if clip.first and offset is not None:
                clip.start_wall = offset + clip.start_t
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
        stream = StreamSpan(self._connection, clip.start_t) if self._live else None
        self._on_clip(
            FinishedClip(
                self.camera, clip.writer.part, clip.final, start, duration, partial, damaged, stream
            )
        )

    def finish(self) -> None:
        """The connection ended: the clip in progress is closed and handed on, short."""
        held = self._frames.take()
        try:
            if held is not None and (held.dts is not None or held.pts is not None):
                self._video_packet(held)
        except (av.FFmpegError, OSError) as exc:
            log.warning("last packet lost camera=%s: %s", self.camera, exc)
        self._end_current(partial=True)
