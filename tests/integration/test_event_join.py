"""Joining a camera's clips into an event clip, on real files: cameras' H.264 with AAC (whose
audio starts before its video), and a recording swapped for a link before it is joined."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from edged.clip import Clip, ClipState
from edged.media.concat import concat_clips
from edged.media.recording_files import RecordingChanged
from edged.media.source_check import fingerprint_of
from tests.support.environment import require_program


def camera_clip(path: Path, seconds: int) -> Path:
    """H.264 at 15 fps with AAC, as ffmpeg writes a camera's recording (AAC primed)."""
    ffmpeg = require_program("ffmpeg")
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-g", "15", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


def as_clip(clip_id: int, path: Path, *, fingerprinted: bool = False) -> Clip:
    size = path.stat().st_size
    fingerprint = None
    if fingerprinted:
        fd = os.open(path, os.O_RDONLY)
        try:
            fingerprint = fingerprint_of(fd, size)
        finally:
            os.close(fd)
    return Clip(
        id=clip_id, camera="yard", path=path, size=size, state=ClipState.IN_EVENT, attempts=0,
        start=datetime(2026, 12, 1, tzinfo=UTC), duration_s=4.0, callback_token=None,
        task_id=None, last_error=None, next_attempt_at=None, found_at=0.0,
        fingerprint=fingerprint,
    )  # fmt: skip


async def test_clips_with_aac_audio_are_joined_with_every_frame_and_sample(tmp_path: Path) -> None:
    members = [
        as_clip(i, await asyncio.to_thread(camera_clip, tmp_path / f"{i}.mp4", 4)) for i in range(3)
    ]
    joined = await asyncio.to_thread(concat_clips, members, tmp_path / "event.mp4")
    assert joined.duration_s == pytest.approx(12.0, abs=0.1)
    with av.open(str(joined.path)) as container:
        video = sum(1 for _ in container.decode(video=0))
    with av.open(str(joined.path)) as container:
        audio_s = sum(frame.samples for frame in container.decode(audio=0)) / 48000
    assert video == 3 * 4 * 15
    assert audio_s == pytest.approx(12.0, abs=0.1)


async def test_a_recording_swapped_for_a_link_is_not_joined(tmp_path: Path) -> None:
    """Someone who can write into the NVR folder replaces a queued recording with a link to
    another camera's private recording: the join refuses it and writes nothing."""
    private = await asyncio.to_thread(camera_clip, tmp_path / "private.mp4", 4)
    first = await asyncio.to_thread(camera_clip, tmp_path / "a.mp4", 4)
    second = await asyncio.to_thread(camera_clip, tmp_path / "b.mp4", 5)
    members = [as_clip(1, first, fingerprinted=True), as_clip(2, second, fingerprinted=True)]
    second.unlink()
    second.symlink_to(private)
    output = tmp_path / "event.mp4"
    with pytest.raises(RecordingChanged, match=r"symbolic link|leads to|changed"):
        await asyncio.to_thread(concat_clips, members, output)
    assert not output.exists() and not output.with_name("event.mp4.part").exists()
