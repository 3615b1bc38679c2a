"""Where a member of an event clip is cut without transcoding: at its video keyframes, so that
the footage kept always covers the span asked for.

The promise: `KeyframeCut(video, audio, from_s, to_s).packets(demuxed)` yields, of one
recording's packets in demux order, those to keep: the video from the last keyframe at or
before `from_s` up to the first keyframe at or after `to_s` (that keyframe not kept), and the
audio (of `audio`, None when it is not taken) that plays from the first keyframe kept on and
before the one it stopped at. Times are seconds from the recording's first video keyframe
(where its active seconds are counted from); None keeps that end whole. A keyframe is a
packet the demuxer flags as one (an IDR picture in cameras' H.264, which nothing after it
refers back past). Demux is sequential, so the packets of the current group of pictures are
held until the next keyframe tells whether it starts after `from_s`. Once the packets are
taken, `origin`, `begin` and `end` say what was kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass(frozen=True, slots=True)
class _Stamped:
    packet: av.Packet
    t: Fraction  # seconds, on the recording's clock
    video: bool
    key: bool  # a video keyframe


def time_of(packet: av.Packet) -> Fraction | None:
    stamp = packet.pts if packet.pts is not None else packet.dts
    if stamp is None or packet.time_base is None:
        return None
    return stamp * Fraction(packet.time_base)


class KeyframeCut:
    def __init__(
        self,
        video: av.stream.Stream,
        audio: av.stream.Stream | None,
        from_s: float | None,
        to_s: float | None,
    ) -> None:
        self.video = video
        self.audio = audio  # None: the audio is not taken
        # Exact comparisons, no slack: a keyframe a tick past the asked start is not taken,
        # so the footage kept never starts after it (nor ends before `to_s`).
        self._from = None if from_s is None else Fraction(max(from_s, 0.0))
        self._to = None if to_s is None else Fraction(to_s)
        #: The time of the recording's first video keyframe (seconds, its own clock).
        self.origin: Fraction | None = None
        #: The time of the first keyframe kept, when cut at its start.
        self.begin: Fraction | None = None
        #: The time of the keyframe it stopped at (not kept), when cut at its end.
        self.end: Fraction | None = None

    @property
    def head_s(self) -> float:
        """How much of the recording was left out before the footage kept."""
        if self.begin is None or self.origin is None:
            return 0.0
        return float(self.begin - self.origin)

    def kept_s(self, whole_s: float) -> float:
        """The length of the footage kept, of a recording `whole_s` long."""
        end_s = whole_s if self.end is None or self.origin is None else self.end - self.origin
        return float(end_s) - self.head_s

    def packets(self, demuxed: Iterable[av.Packet]) -> Iterator[av.Packet]:
        for item in self._until_end(self._from_start(self._stamped(demuxed))):
            yield item.packet

    def _stamped(self, demuxed: Iterable[av.Packet]) -> Iterator[_Stamped]:
        for packet in demuxed:
            t = time_of(packet)
            if packet.dts is None or packet.size == 0 or t is None:
                continue  # the demuxer's flush packet
            video = packet.stream is self.video
            key = video and packet.is_keyframe
            if key and self.origin is None:
                self.origin = t
            yield _Stamped(packet, t, video, key)

    def _since_origin(self, item: _Stamped) -> Fraction | None:
        return None if self.origin is None else item.t - self.origin

    def _from_start(self, items: Iterator[_Stamped]) -> Iterator[_Stamped]:
        start = self._from
        if start is None:
            yield from items
            return
        for item in self._from_keyframe(items, start):
            # Audio is stored near the video it plays with, before it or after it: what
            # plays before the first keyframe kept goes, wherever it is in the file.
            if item.video or (self.begin is not None and item.t >= self.begin):
                yield item

    def _from_keyframe(self, items: Iterator[_Stamped], start: Fraction) -> Iterator[_Stamped]:
        """The video from the last keyframe at or before `start` on, the audio about there."""
        held: list[_Stamped] | None = []  # from the latest keyframe at or before the start
        for item in items:
            if held is None:
                yield item
                continue
            since = self._since_origin(item)
            if item.key and since is not None and since <= start:
                # A later keyframe still at or before the start: what was held goes, so that
                # no more than a group of pictures (and the audio playing with it) is held.
                held = [h for h in held if not h.video and h.t >= item.t]
                held.append(item)
                self.begin = item.t
                continue
            if self.begin is None or not item.key:
                held.append(item)
                continue
            # The first keyframe after the start: the one before it is the first kept.
            yield from held
            held = None
            yield item
        if held is not None and self.begin is not None:  # it ended in the chosen group
            yield from held

    def _until_end(self, items: Iterator[_Stamped]) -> Iterator[_Stamped]:
        stop = self._to
        if stop is None:
            yield from items
            return
        # Audio at or after `to_s`, until the keyframe it stops at is known: audio is stored
        # near the video it plays with, before it or after it (MPEG-TS's some 300 ms ahead).
        late: list[_Stamped] = []
        kept_video = False
        for item in items:
            since = self._since_origin(item)
            past = since is not None and since >= stop
            if self.end is None:
                if item.key and kept_video and past:
                    self.end = item.t  # the first keyframe at or after the end: not kept
                    yield from (h for h in late if h.t < item.t)
                    if self.audio is None:
                        return
                    continue
                if past and not item.video:
                    late.append(item)
                    continue
                kept_video = kept_video or item.video
                yield item
                continue
            if item.video:  # past it: only the audio that plays before it
                continue
            if item.t >= self.end:
                return  # a stream's audio is in order: nothing after this plays before it
            yield item
        if self.end is None:  # no keyframe after `to_s`: kept to its end
            yield from late
