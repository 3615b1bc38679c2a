"""Camera audio that MP4 cannot hold (G.711 µ-law/A-law, G.726…) becomes AAC.

One encoder per connection, not per clip: its AAC packets carry the stream's own timeline,
so the segmenter cuts them exactly like copied audio, with no encoder priming at each clip.
Blocking: runs on the camera's thread.
"""

from __future__ import annotations

from fractions import Fraction

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.stream import AudioStream

AAC_BIT_RATE = 64000


class AacTranscoder:
    def __init__(self, source: AudioStream) -> None:
        self._decoder = source.codec_context
        self.rate = self._decoder.sample_rate or 8000
        self.layout = self._decoder.layout.name or "mono"
        self.time_base = Fraction(1, self.rate)
        encoder = av.CodecContext.create("aac", "w")
        assert isinstance(encoder, AudioCodecContext)
        encoder.sample_rate = self.rate
        encoder.layout = self.layout
        encoder.format = "fltp"
        encoder.bit_rate = AAC_BIT_RATE
        encoder.time_base = self.time_base
        encoder.open()
        self._encoder = encoder

    def feed(self, packet: av.Packet) -> list[av.Packet]:
        """AAC packets for one source packet (often none: AAC frames are bigger)."""
        out: list[av.Packet] = []
        for frame in self._decoder.decode(packet):
            if frame.pts is not None and frame.time_base is not None:
                frame.pts = int(frame.pts * frame.time_base / self.time_base)
            frame.time_base = self.time_base
            out += self._encoder.encode(frame)
        return out
