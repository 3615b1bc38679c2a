"""The segmenter on its own, fed real packets (from the test stream's file) with the timestamp
faults cameras produce: backwards and missing DTS are repaired or dropped and counted, a
timestamp jump starts a new clip, and every clip written keeps DTS going forward."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from edged.sources.rtsp_segmenter import Segmenter
from edged.sources.rtsp_values import CameraStats, FinishedClip
from edged.sources.rtsp_writer import StreamPlan
from tests.support.rtsp import CLIP_S, FPS, frame_indices, runs


def _segment(
    source: Path, camera_dir: Path, seconds: float, fault: Callable[[int, av.Packet], None]
) -> tuple[list[FinishedClip], CameraStats]:
    """Blocking: the first `seconds` of `source` through a Segmenter; `fault(n, packet)` may
    change the n-th packet before it is fed."""
    finished: list[FinishedClip] = []
    stats = CameraStats()
    with av.open(str(source)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        plan = StreamPlan.choose(video, audio, "copy")
        segmenter = Segmenter("cam", camera_dir, plan, CLIP_S, finished.append, stats)
        for n, packet in enumerate(container.demux(video, audio)):
            if packet.dts is None or packet.time_base is None:
                continue
            if packet.dts * packet.time_base > seconds:
                break
            fault(n, packet)
            segmenter.feed(packet)
        segmenter.finish()
    return finished, stats


def _dts_go_forward(path: Path) -> bool:
    with av.open(str(path)) as container:
        last: dict[int, int] = {}
        for packet in container.demux():
            if packet.dts is None:
                continue
            if packet.dts <= last.get(packet.stream.index, -(1 << 62)):
                return False
            last[packet.stream.index] = packet.dts
    return True


async def test_backwards_and_missing_timestamps_are_repaired_or_dropped_and_counted(
    stream_file: Path, tmp_path: Path
):
    faults = {"backwards": 0, "missing": 0, "none": 0}

    def fault(n: int, packet: av.Packet) -> None:
        assert packet.dts is not None
        if packet.stream.type == "audio" and n % 23 == 5:
            packet.dts -= 2048  # a step back of a few audio frames
            faults["backwards"] += 1
        elif packet.stream.type == "audio" and n % 31 == 7:
            packet.pts = packet.dts = None  # no timestamp at all: unusable
            faults["none"] += 1
        elif packet.stream.type == "video" and n % 17 == 3 and not packet.is_keyframe:
            packet.dts = None  # DTS lost, PTS kept
            faults["missing"] += 1

    finished, stats = await asyncio.to_thread(
        _segment, stream_file, tmp_path / "cam", 2.5 * CLIP_S, fault
    )
    assert all(faults.values()), faults
    assert stats.dropped == faults["none"]
    assert stats.repaired >= faults["backwards"] + faults["missing"]
    assert [clip.duration_s for clip in finished[:2]] == pytest.approx([CLIP_S, CLIP_S])
    decoded = []
    assert [clip.partial for clip in finished] == [False] * (len(finished) - 1) + [True]
    for clip in finished:
        assert not clip.damaged
        assert await asyncio.to_thread(_dts_go_forward, clip.part), clip.part.name
        decoded += await asyncio.to_thread(frame_indices, clip.part)
    assert list(runs(decoded)) == []  # repairs lost no frame and cut none twice
    assert len(decoded) == round(2.5 * CLIP_S * FPS) + 1


async def test_a_timestamp_jump_starts_a_new_clip_at_the_next_keyframe(
    stream_file: Path, tmp_path: Path
):
    jump_s = 3600  # the camera's clock was set an hour back mid-stream

    def fault(n: int, packet: av.Packet) -> None:
        assert packet.dts is not None and packet.pts is not None and packet.time_base
        if packet.dts * packet.time_base >= 7:
            shift = int(jump_s / packet.time_base)
            packet.dts -= shift
            packet.pts -= shift

    finished, stats = await asyncio.to_thread(_segment, stream_file, tmp_path / "cam", 14, fault)
    assert stats.resyncs == 1
    durations = [clip.duration_s for clip in finished]
    assert durations[0] == pytest.approx(CLIP_S)
    assert durations[1] == pytest.approx(2.0, abs=1 / FPS)  # cut at the jump, not lost
    for clip in finished:
        assert await asyncio.to_thread(_dts_go_forward, clip.part), clip.part.name
