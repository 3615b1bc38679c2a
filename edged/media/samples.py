"""Synthetic H.264 clips made with PyAV, for the demo, the tests and the benchmarks.

A clip's container title can name people; the emulator reports the persons a
title or file name names as present, which lets the demo and the tests drive
matches without a real model.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av


def make_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    fps: int = 10,
    width: int = 320,
    height: int = 240,
    title: str | None = None,
    gop: int | None = None,
) -> Path:
    """Write a small H.264 MP4 of moving colour bars; blocking (call it off the loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = max(1, round(seconds * fps))
    with av.open(str(path), mode="w", format="mp4") as container:
        if title:
            container.metadata["title"] = title
        stream = container.add_stream("libx264", rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        stream.codec_context.gop_size = gop or fps
        for index in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            shade = (index * 7) % 256
            for plane_index, plane in enumerate(frame.planes):
                value = (shade + plane_index * 80) % 256
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def make_padded_file(path: Path, size: int, *, seconds: float = 2.0) -> Path:
    """A valid MP4 followed by padding up to `size` bytes, for large-upload benchmarks.

    MP4 demuxers ignore trailing bytes after the last box, so the file still probes
    as a short clip while its size is whatever the benchmark needs.
    """
    make_clip(path, seconds=seconds)
    with path.open("r+b") as handle:
        handle.seek(0, 2)
        handle.truncate(max(size, handle.tell()))
    return path
