"""Video packets made fit for MP4: the parts of one frame joined, in-band parameter sets found.

Some cameras send one frame as several packets (the later parts without a timestamp, or with
the same one); the muxer would take them for several frames. Some send their SPS/PPS only in
the stream, never in the SDP, and an MP4 needs them in its header.
"""

from __future__ import annotations

import av

from edged.sources.rtsp_values import CameraStats


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


class FrameJoiner:
    """Holds one packet back: parts of one frame that arrive as separate packets (no
    timestamp yet, or the same one) are joined, or the muxer would see two frames."""

    def __init__(self, stats: CameraStats) -> None:
        self.stats = stats
        self._held: av.Packet | None = None

    def push(self, packet: av.Packet) -> av.Packet | None:
        """The previous frame, whole, once `packet` shows it is complete; else None."""
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
            return held
        return None

    def take(self) -> av.Packet | None:
        """The packet held back, at the end of the connection (it may lack any timestamp)."""
        held, self._held = self._held, None
        return held
