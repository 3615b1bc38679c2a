"""A live RTSP camera's examination: keyframes in, a cut when the post-roll has passed, each
clip's activity out (edged/sources/live_activity.py), on real H.264 from the scripted scene."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from edged.activity import Settings, examine_file
from edged.sources.live_activity import KEEP, LiveActivity
from edged.sources.live_substream import _SubClock
from tests.support.activity_scene import Scene, Walker, write_video

SCENE = Scene(width=320, height=180, fps=5, seconds=24, noise=((0, 2.0),), walkers=(Walker(6, 3),))
POST_ROLL_S = 3.0


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(SCENE, tmp_path_factory.mktemp("live") / "walk.mp4", keyframe_s=1.0)


def keyframes(path: Path) -> Iterator[tuple[bytes, float]]:
    """Blocking: each keyframe's bytes and its stream time, as the camera's thread sees them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size and packet.is_keyframe and packet.pts is not None:
                assert packet.time_base is not None
                yield bytes(packet), float(packet.pts * packet.time_base)


def codec_of(path: Path) -> tuple[str, bytes | None]:
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return context.name, context.extradata


def fed_as_a_stream(live: LiveActivity, path: Path) -> list[float]:
    """Each keyframe handed in once the worker has taken the one before, as a live stream's
    keyframes, a second or two apart, let it; their stream times."""
    times = []
    for data, t in keyframes(path):
        live.keyframe(data, t)
        live.activity_of(1, 0.0, t + 0.01, timeout_s=10)  # returns once it is examined
        times.append(t)
    return times


def started(live: LiveActivity) -> threading.Thread:
    worker = threading.Thread(target=live.run, daemon=True)
    worker.start()
    return worker


def test_the_clip_is_cut_once_at_the_first_keyframe_after_the_post_roll(walk: Path) -> None:
    """The figure walks 6-9 s: the file's examination says which seconds; the cut comes at
    the first keyframe once the post-roll after them has passed, and only once."""
    active = examine_file(walk).active
    assert active, "the scene must show the walk"
    ended = max(active) + 1  # as the gate reads it: the end of the last active second
    live = LiveActivity("yard", Settings(), POST_ROLL_S)
    worker = started(live)
    assert live.connected(*codec_of(walk)) == 1
    cuts = []
    for data, t in keyframes(walk):
        live.keyframe(data, t)
        # The camera's thread asks at each keyframe; here it waits for the worker first, as
        # a live stream's keyframes, a second apart, give it time to.
        live.activity_of(1, 0.0, t + 0.01, timeout_s=10)
        if live.post_roll_passed(t, 0.0):
            cuts.append(t)
    live.stop()
    worker.join(timeout=10)
    assert cuts == [ended + POST_ROLL_S]


def test_a_clip_gets_the_activity_its_file_would_have_had(walk: Path) -> None:
    live = LiveActivity("yard", Settings(), POST_ROLL_S)
    worker = started(live)
    live.connected(*codec_of(walk))
    fed_as_a_stream(live, walk)
    found = live.activity_of(1, 0.0, float(SCENE.seconds), timeout_s=10)
    quiet = live.activity_of(1, 16.0, 8.0, timeout_s=10)  # a later clip: the yard is empty
    other = live.activity_of(2, 0.0, 8.0, timeout_s=0.1)  # another connection's: none seen
    live.stop()
    worker.join(timeout=10)
    assert found is not None and quiet is not None
    assert found.active == examine_file(walk).active
    assert found.seconds == SCENE.seconds and found.samples == SCENE.seconds
    assert quiet.active == () and quiet.samples == 8
    assert other is None


def test_a_keyframe_dropped_for_a_busy_worker_leaves_its_clip_to_the_file(walk: Path) -> None:
    """The worker is not running yet and its queue holds one: the keyframes after the first
    are dropped, never waited for; a clip over them gets no live activity."""
    live = LiveActivity("yard", Settings(), POST_ROLL_S, queue_size=2)
    live.connected(*codec_of(walk))  # takes one place in the queue
    for data, t in keyframes(walk):
        live.keyframe(data, t)  # would block the camera's thread if it waited
    assert live.dropped == SCENE.seconds - 1
    worker = started(live)
    assert live.activity_of(1, 0.0, 1.0, timeout_s=10) is not None  # the first keyframe's
    assert live.activity_of(1, 0.0, 5.0, timeout_s=10) is None
    assert not live.post_roll_passed(20.0, 0.0)
    live.stop()
    worker.join(timeout=10)


def test_keyframes_of_a_stream_with_b_frames_are_decoded_one_by_one(tmp_path: Path) -> None:
    """A decoder that reorders holds a lone keyframe back; it is drained each time."""
    path = tmp_path / "bframes.mp4"
    rng = np.random.default_rng(3)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.codec_context.gop_size = 5
        stream.options = {"preset": "medium", "bf": "2", "scenecut": "0"}
        for index in range(25):
            pixels = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 5)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.has_b_frames
    live = LiveActivity("yard", Settings(), POST_ROLL_S)
    worker = started(live)
    live.connected(*codec_of(path))
    times = fed_as_a_stream(live, path)
    found = live.activity_of(1, 0.0, 6.0, timeout_s=10)
    live.stop()
    worker.join(timeout=10)
    assert len(times) >= 5
    assert found is not None and found.samples == len(times)


def test_a_clip_older_than_what_is_remembered_gets_no_live_finding(walk: Path) -> None:
    """An hour's clip with more keyframes than are kept: its first ones are forgotten, so it
    is examined from its file rather than judged on its second half."""
    live = LiveActivity("yard", Settings(), POST_ROLL_S)
    worker = started(live)
    live.connected(*codec_of(walk))
    times = fed_as_a_stream(live, walk)
    assert live.activity_of(1, 0.0, float(SCENE.seconds), timeout_s=10) is not None
    for index in range(KEEP):  # later keyframes, not examined (no decoder for them)
        live.keyframe(b"", times[-1] + 1 + index)
    found = live.activity_of(1, 0.0, float(SCENE.seconds), timeout_s=10)
    live.stop()
    worker.join(timeout=10)
    assert found is None


def test_sub_stream_frames_are_placed_by_their_own_time_not_by_when_they_were_read() -> None:
    """A reader that fell behind reads frames late: they are placed where their timestamps
    put them on the clock of the quickest arrival; a jump of the sub-stream's clock starts
    the clock over instead of stopping the examination."""
    clock = _SubClock(0.5)
    placed = [clock.place(t, 100.0 + t + lag) for t, lag in ((0.0, 0.2), (0.5, 0.1), (1.0, 3.0))]
    assert placed == [pytest.approx(100.2), pytest.approx(100.6), pytest.approx(101.1)]
    assert clock.place(1.2, 104.0) is None  # between two on the grid
    jumped = clock.place(50_000.0, 105.0)  # a timestamp 14 h ahead
    assert jumped == pytest.approx(105.0)
    assert clock.place(50_000.5, 105.6) == pytest.approx(105.5)
