"""The examiner on real H.264 files (generated, small): what is decoded, what is found, and how
it fails."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest

from edged.activity import (
    ClipActivity,
    Decode,
    Detector,
    ExamineError,
    Polygon,
    Settings,
    Stopped,
    examine_file,
    examine_frames,
)
from tests.support.activity_scene import Box, Scene, Walker, write_video

#: Everything the gate must ignore at once: noise, a dimming sky, a burnt-in clock.
DISTRACTED = Scene(
    width=640,
    height=360,
    fps=5,
    seconds=30,
    noise=((0, 3.0),),
    gain=((0, 1.0), (30, 0.6)),
    clock=Box(0.62, 0.92, 0.98, 0.99),
)
WALK = Walker(12, 6)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("activity")
    quiet = write_video(DISTRACTED, folder / "quiet.mp4", keyframe_s=1.0)
    walk = Scene(**{**_fields(DISTRACTED), "walkers": (WALK,)})
    return {
        "quiet": quiet,
        "walk": write_video(walk, folder / "walk.mp4", keyframe_s=1.0),
        "walk_2s": write_video(walk, folder / "walk_2s.mp4", keyframe_s=2.0),
    }


def _fields(scene: Scene) -> dict[str, object]:
    return {name: value for name, value in scene.__dict__.items() if not name.startswith("_")}


def _within_walk(activity: ClipActivity) -> bool:
    return all(WALK.start_s <= second <= WALK.end_s for second in activity.active)


def test_keyframes_only_are_decoded_and_the_walk_is_found(videos: dict[str, Path]) -> None:
    activity = examine_file(videos["walk"])
    assert activity.samples == 30  # one keyframe a second, nothing else
    assert activity.seconds == pytest.approx(30, abs=0.5)
    assert activity.active and _within_walk(activity), activity.active
    assert activity.active_seconds >= 4
    assert activity.peak_area > 0.005 and activity.peak_score > 0


def test_keyframes_two_seconds_apart_still_find_the_walk(videos: dict[str, Path]) -> None:
    activity = examine_file(videos["walk_2s"])
    assert activity.samples == 15
    # A keyframe stands for the second after it too: activity is reported for both.
    assert activity.active and all(
        WALK.start_s - 1 <= second <= WALK.end_s + 1 for second in activity.active
    )
    assert activity.active_seconds >= 4


def test_all_frames_at_two_a_second(videos: dict[str, Path]) -> None:
    activity = examine_file(videos["walk"], decode=Decode.ALL, sample_fps=2.0)
    assert activity.samples == 60
    assert activity.active and _within_walk(activity), activity.active


def test_distractors_alone_are_no_activity(videos: dict[str, Path]) -> None:
    for decode in Decode:
        activity = examine_file(videos["quiet"], decode=decode)
        assert activity.active == (), decode
        assert activity.peak_area < 0.002


def test_a_clock_burnt_into_1080p_is_no_activity(tmp_path: Path) -> None:
    # Its 8 px strokes, scaled to 320 px wide, are 2-3 px of blended edges: thinner than the
    # opening. (A 3x3 opening left their corners, 0.3 % of the ground, from 20 s on.)
    scene = Scene(
        width=1920, height=1080, fps=5, seconds=30, noise=((0, 2.0),), clock=DISTRACTED.clock
    )
    path = write_video(scene, tmp_path / "clock.mp4", keyframe_s=1.0, crf=28)
    # In a zone of the ground (as in bench/activity_day.py) the digits are a larger share.
    ground = Settings(zones=(Polygon.parse([[0, 0.35], [1, 0.35], [1, 1], [0, 1]]),))
    assert examine_file(path, ground).active == ()


def test_frames_from_a_stream_give_what_the_file_gives(videos: dict[str, Path]) -> None:
    with av.open(str(videos["walk"])) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        from_frames = examine_frames(container.decode(stream), duration_s=30.0)
    assert from_frames == examine_file(videos["walk"])


def test_a_camera_detector_carries_its_background_over_clips(videos: dict[str, Path]) -> None:
    detector = Detector()
    examine_file(videos["quiet"], detector=detector)
    # The next clip's first keyframe is compared with the camera's background, not taken as it.
    assert examine_file(videos["quiet"], detector=detector).active == ()


def test_examinations_in_threads_give_the_serial_results(videos: dict[str, Path]) -> None:
    paths = [videos["walk"], videos["quiet"], videos["walk_2s"]] * 2
    serial = [examine_file(path) for path in paths]
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(examine_file, paths)) == serial


def test_a_set_stop_event_stops_the_examination(videos: dict[str, Path]) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        examine_file(videos["walk"], stop=stop)


def test_an_unreadable_file_is_an_examine_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage" * 100)
    with pytest.raises(ExamineError, match=r"broken\.mp4"):
        examine_file(broken)
    with pytest.raises(ExamineError, match=r"absent\.mp4"):
        examine_file(tmp_path / "absent.mp4")
