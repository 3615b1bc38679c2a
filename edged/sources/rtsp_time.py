"""Stream time of one RTSP connection: timestamps that only go forward, and the wall clock.

A packet's DTS is repaired when it is missing (the PTS stands in) or steps back a little (one
tick after the last), and counted; a packet with no timestamp at all is dropped. A bigger jump
means the camera restarted its clock: a jump of the video calls `on_jump` (the segmenter
starts a new clip there); the audio follows the video. The lowest wall-minus-stream offset
seen (the packet that came with the least delay) maps stream seconds to the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable

import av

from edged.sources.rtsp_values import CameraStats

#: Smaller steps backwards are repaired; bigger jumps mean the camera restarted its clock.
MAX_BACKWARDS_S = 1.0
MAX_FORWARD_S = 10.0


class StreamTime:
    """The clock of one connection's stream, as the segmenter reads it."""

    def __init__(
        self,
        stats: CameraStats,
        on_jump: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.stats = stats
        self._on_jump = on_jump
        self._clock = clock
        self._last_dts: dict[str, int] = {}
        self.offset: float | None = None  # wall minus stream seconds, lowest seen
        self.last_t: float | None = None  # stream seconds of the last video packet
        self.video_end = 0.0  # stream seconds where the last video packet ends
        self.frame_s = 0.0  # the last step between video packets

    def repair(self, kind: str, packet: av.Packet, tb: float) -> int | None:
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
                self._on_jump((dts - last) * tb)
        elif last is not None and dts <= last:
            dts = last + 1
            self.stats.repaired += 1
        self._last_dts[kind] = dts
        return dts

    def video_at(self, t: float, duration_s: float) -> None:
        """A video packet at stream second `t`, lasting `duration_s` (0: as long as the last
        step between frames)."""
        now = self._clock()
        self.offset = now - t if self.offset is None else min(self.offset, now - t)
        if self.last_t is not None and t > self.last_t:
            self.frame_s = t - self.last_t
        self.last_t = t
        self.video_end = t + (duration_s or self.frame_s)

    def restart_video(self) -> None:
        """After a jump: the video's clock, and its offset to the wall clock, start over."""
        self._last_dts.pop("video", None)
        self.offset = self.last_t = None
        self.video_end = 0.0
