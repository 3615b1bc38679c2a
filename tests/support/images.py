"""Small real pictures for the person-image tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av


def write_jpeg(path: Path) -> Path:
    """A real, tiny JPEG, encoded with PyAV."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 16, 16, "yuvj420p"
    codec.time_base = Fraction(1, 1)
    frame = av.VideoFrame(16, 16, "yuvj420p")
    packets = [*codec.encode(frame), *codec.encode(None)]
    path.write_bytes(b"".join(bytes(packet) for packet in packets))
    return path
