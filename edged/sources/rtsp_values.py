"""What an RTSP camera's thread shares with the loop: each finished clip, and the counters.

A `FinishedClip` is handed from the segmenter (on the connection's thread) to the source on
the loop, which makes it durable and queues it. `CameraStats` counts since edged started; each
part of the camera's pipeline (the connection, the packets, the segmenter) counts its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


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
class StreamSpan:
    """Where a clip starts in its connection's stream, for the live examination's findings."""

    connection: int
    start_t: float  # stream seconds


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
    stream: StreamSpan | None = None  # examined live: where to read its activity
