"""Joining a camera's clips into an event clip, on real files: cameras' H.264 with AAC (whose
audio starts before its video), trimmed at keyframes to a span, and a recording swapped for a
link before it is joined."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from edged.clip import Clip, ClipState
from edged.media.concat import Trim, concat_clips
from edged.media.recording_files import RecordingChanged
from edged.media.source_check import fingerprint_of
from tests.support.activity_scene import Scene, Walker, write_video
from tests.support.environment import require_program

#: A scene's recording: a keyframe each second, someone crossing all along (no two frames
#: alike), AAC with a 50 ms beep at the middle of each second. In MP4 and in MPEG-TS, whose
#: muxer puts audio ahead of the video it plays with.
SCENE = Scene(width=320, height=180, fps=5, seconds=6, walkers=(Walker(0, 6),))
RATE = 48000
BEEP_AT_S = 0.5


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


def scene_clip(path: Path) -> Path:
    video = write_video(SCENE, path.with_name(f"{path.stem}-video.mp4"), keyframe_s=1.0)
    beeps = f"0.5*sin(2*PI*1000*t)*between(mod(t,1),{BEEP_AT_S},{BEEP_AT_S + 0.05})"
    subprocess.run(
        [require_program("ffmpeg"), "-v", "error", "-i", str(video),
         "-f", "lavfi", "-i", f"aevalsrc=exprs='{beeps}':s={RATE}:d={SCENE.seconds:g}",
         "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def video_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def audio_stored(path: Path) -> tuple[float, float]:
    """When the first audio packet starts and the last one ends (seconds, the file's clock),
    those a player skips (before the video's start) too."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(audio=0) if p.pts is not None and p.size]
    assert packets and packets[0].time_base is not None
    base = packets[0].time_base
    return float(packets[0].pts * base), float((packets[-1].pts + packets[-1].duration) * base)


def beeps_heard(path: Path) -> list[float]:
    """When each beep starts (seconds, the file's clock)."""
    onsets: list[float] = []
    quiet_since = float("-inf")  # a beep starts after a fifth of a second of quiet
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            assert frame.time is not None
            samples: npt.NDArray[np.float32] = frame.to_ndarray()[0]
            for index in np.flatnonzero(np.abs(samples) > 0.1):
                t = frame.time + index / RATE
                if t - quiet_since > 0.2:
                    onsets.append(t)
                quiet_since = t
    return onsets


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


@pytest.fixture(scope="module")
def scene_recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    mp4 = scene_clip(tmp_path_factory.mktemp("trim") / "scene.mp4")
    ts = mp4.with_suffix(".ts")
    subprocess.run(
        [require_program("ffmpeg"), "-v", "error", "-i", str(mp4), "-c", "copy", str(ts)],
        check=True,
    )
    return {"mp4": mp4, "ts": ts}


@pytest.mark.parametrize("container", ["mp4", "ts"])
@pytest.mark.parametrize(
    ("asked", "keyframes"),
    [
        ((3.5, 2.3), (3, 3)),  # between keyframes: the one before the start, after the end
        ((3.0, 3.0), (3, 3)),  # on keyframes: those
        ((2.9, 3.1), (2, 4)),
    ],
)
async def test_an_event_clip_is_cut_at_the_keyframes_around_the_span_asked(
    scene_recordings: dict[str, Path],
    tmp_path: Path,
    asked: tuple[float, float],
    keyframes: tuple[int, int],
    container: str,
) -> None:
    """Three 6 s recordings: the first is kept from its last keyframe at or before the asked
    start, the last up to its first keyframe at or after the asked end (not kept), with every
    frame in between; the audio from the first keyframe kept on, in step with the video."""
    scene_members = [as_clip(i, scene_recordings[container]) for i in range(3)]
    (start_s, end_s), (first_key, end_key) = asked, keyframes
    seconds = round(SCENE.seconds)
    kept_s = (seconds - first_key) + seconds + end_key
    joined = await asyncio.to_thread(
        concat_clips, scene_members, tmp_path / "event.mp4", Trim(start_s, end_s)
    )
    assert joined.head_s == first_key <= start_s and end_key >= end_s
    # A whole recording's length is its container's: MPEG-TS's takes in the AAC that plays
    # on some 20 ms past the video.
    assert joined.duration_s == pytest.approx(kept_s, abs=0.01 if container == "mp4" else 0.05)

    frames = await asyncio.to_thread(video_frames, joined.path)
    source = await asyncio.to_thread(video_frames, scene_members[0].path)
    assert len(frames) == kept_s * SCENE.fps
    assert frames[0].key_frame and frames[0].time == 0
    # The first and the last frame kept are the recordings' frames at those keyframes.
    assert np.array_equal(frames[0].to_ndarray(), source[first_key * SCENE.fps].to_ndarray())
    assert np.array_equal(frames[-1].to_ndarray(), source[end_key * SCENE.fps - 1].to_ndarray())

    # The audio from the first keyframe kept (within an AAC frame) to the one it stopped at:
    # each join lets a frame of AAC's priming through (21 ms; 37 ms from MPEG-TS), as
    # joining whole recordings does.
    first_audio, last_audio = await asyncio.to_thread(audio_stored, joined.path)
    assert 0 <= first_audio < 1024 / RATE and kept_s <= last_audio <= kept_s + 0.1
    # One beep for each second kept, none from the footage cut off; those of the first
    # recording where its video has them, those after a join up to its priming later.
    heard = await asyncio.to_thread(beeps_heard, joined.path)
    expected = [second + BEEP_AT_S for second in range(kept_s)]
    assert len(heard) == len(expected), heard
    for t, want in zip(heard, expected, strict=True):
        assert want - 0.01 <= t <= want + (0.01 if want < seconds - first_key else 0.1), heard


async def test_an_event_clip_of_video_with_b_frames_is_cut_at_its_keyframes(
    tmp_path: Path,
) -> None:
    """A camera's H.264 whose frames are stored out of display order (B-frames; a keyframe
    each second): the frames kept are those shown from the keyframe kept on."""
    path = await asyncio.to_thread(camera_clip, tmp_path / "camera.mp4", 4)
    members = [as_clip(i, path) for i in range(3)]
    joined = await asyncio.to_thread(concat_clips, members, tmp_path / "event.mp4", Trim(1.5, 2.5))
    assert joined.head_s == 1.0 and joined.duration_s == pytest.approx(3 + 4 + 3, abs=0.01)
    frames = await asyncio.to_thread(video_frames, joined.path)
    source = await asyncio.to_thread(video_frames, path)
    assert len(frames) == (3 + 4 + 3) * 15
    assert frames[0].key_frame and frames[0].time == 0
    assert np.array_equal(frames[0].to_ndarray(), source[15].to_ndarray())
    assert np.array_equal(frames[-1].to_ndarray(), source[3 * 15 - 1].to_ndarray())
    # Its audio is stored up to 130 ms after the video it plays with: none of it from before
    # the keyframe kept.
    first_audio, last_audio = await asyncio.to_thread(audio_stored, joined.path)
    assert 0 <= first_audio < 1024 / RATE and 10 <= last_audio <= 10 + 0.1


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
