"""`upload: activity` on a live RTSP camera (GStreamer's RTSP server, real H.264 of the
scripted scene): the stream is examined as it records (its keyframes, or an activity
sub-stream), the clip ends once the event's post-roll has passed, not at the fixed cut, the
gate uses what was seen live, and the event is queued a post-roll and a keyframe after the
walk ended. Without the sub-stream, the clips are examined from their files."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from edged.activity import DEFAULT_WIDTH, Settings, examine_file
from edged.activity.detector import Gray
from edged.activity.examine import small_gray
from edged.clip import ClipState
from edged.config.cameras import RtspCamera
from edged.config.model import Config, parse_config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.sources.activity_gate import ActivityGate
from edged.sources.live_activity import LiveActivity
from edged.sources.live_substream import SAMPLE_FPS, SubStream
from edged.sources.rtsp import RtspSource
from tests.support.activity_scene import Scene, Walker, write_video
from tests.support.environment import free_port
from tests.support.rtsp_server import RtspServer
from tests.support.waiting import eventually

#: Someone crosses the yard 3-6 s into the stream; the fixed cut would come at 20 s.
SCENE = Scene(width=320, height=180, fps=5, seconds=40, noise=((0, 2.0),), walkers=(Walker(3, 3),))
CLIP_S = 20
ROLL_S = 3.0
KEYFRAME_S = 1.0


#: The recorded stream of the sub-stream case sends a keyframe only every 4 s; its
#: sub-stream, a quarter of its size, one a second.
SPARSE_KEYFRAME_S = 4.0
SUB = dataclasses.replace(SCENE, width=160, height=90)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("live")
    return {
        "walk": write_video(SCENE, folder / "walk.mp4", keyframe_s=KEYFRAME_S),
        "sparse": write_video(SCENE, folder / "sparse.mp4", keyframe_s=SPARSE_KEYFRAME_S),
        "sub": write_video(SUB, folder / "sub.mp4", keyframe_s=KEYFRAME_S),
    }


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Path], Awaitable[RtspServer]]]:
    servers: list[RtspServer] = []

    async def start(media: Path) -> RtspServer:
        server = RtspServer(media, free_port(), audio="none")
        servers.append(server)
        await asyncio.to_thread(server.start)
        return server

    yield start
    for server in servers:
        await asyncio.to_thread(server.kill)


@dataclass
class Run:
    clips: list[dict[str, Any]]
    queued_at: dict[int, float]  # when the test first saw each clip queued
    live: LiveActivity | None
    substream_frames: int


async def run_camera(tmp_path: Path, url: str, activity: str) -> Run:
    """The camera recorded and examined live until its first clip is sent; then stopped
    (which closes the clip in progress), and every clip judged."""
    state = tmp_path / "state"
    config = parse_config(
        f"api:\n  api_key: k\ncameras:\n  - name: yard\n    rtsp: {url}\n"
        f"    clip_seconds: {CLIP_S}\n    upload: activity\n"
        f"    activity: {{pre_roll: {ROLL_S:g}s, post_roll: {ROLL_S:g}s{activity}}}\n"
        f"storage:\n  dir: {state}\n"
    )
    db = AsyncLedger(await asyncio.to_thread(Ledger, state))
    gate = ActivityGate(db, config.cameras, on_queued=lambda: None, storage_dir=state, poll_s=0.2)
    (yard,) = config.cameras
    assert isinstance(yard, RtspCamera)
    source = RtspSource(db, yard, state, on_clip=gate.wake.set, findings=gate.findings)
    queued_at: dict[int, float] = {}

    async def rows() -> list[dict[str, Any]]:
        found = await db.call(
            db.ledger.db.rows,
            "SELECT c.id, c.path, c.start_at, c.duration_s, c.state, a.active FROM clips c"
            " LEFT JOIN activity a ON a.clip_id = c.id ORDER BY c.id",
        )
        return [dict(row) for row in found]

    async def first_clip_queued() -> bool:
        for row in await rows():
            if row["state"] == ClipState.QUEUED.value:
                queued_at.setdefault(row["id"], time.time())
        return bool(queued_at)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(source.run()), group.create_task(gate.run())]
            try:
                await eventually(
                    first_clip_queued, timeout_s=40, interval_s=0.05, what="a clip sent"
                )
            finally:
                for task in tasks:
                    task.cancel()  # the clip in progress is closed short, and judged
        await _judge_left(db, state, config)
        clips = await rows()
    finally:
        await db.aclose()
    frames = source.substream.frames if source.substream is not None else 0
    return Run(clips, queued_at, source.live, frames)


def gate_line(caplog: pytest.LogCaptureFixture, clip_id: int) -> str:
    """The gate's log line about a clip's activity."""
    (line,) = [r.getMessage() for r in caplog.records if f" clip={clip_id}: " in r.getMessage()]
    return line


def delay_of(run: Run, clip: dict[str, Any], ended: float) -> float:
    """From the end of the clip's activity to the test seeing it queued."""
    start = datetime.fromisoformat(clip["start_at"]).timestamp()
    return run.queued_at[clip["id"]] - (start + ended)


async def test_an_event_on_a_live_camera_closes_a_post_roll_after_it_not_at_the_cut(
    serve: Callable[[Path], Awaitable[RtspServer]],
    videos: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edged.sources.activity_gate")
    camera = await serve(videos["walk"])
    run = await run_camera(tmp_path, camera.url, "")
    first, *after = run.clips
    assert first["state"] == ClipState.QUEUED.value and first["id"] in run.queued_at
    # The gate used what the live examination saw, and it agrees with the file's own.
    assert "(seen live)" in gate_line(caplog, first["id"])
    active = json.loads(first["active"])
    assert active and active == list(examine_file(Path(first["path"])).active)
    # Cut a post-roll (and at most a keyframe) after the activity ended, not at 20 s.
    ended = max(active) + 1
    duration = first["duration_s"]
    # (A keyframe more when the worker fell behind on a loaded box.)
    assert ended + ROLL_S - 0.1 <= duration <= ended + ROLL_S + 2 * KEYFRAME_S + 0.1, duration
    assert duration < CLIP_S - 5
    # Queued soon after its end: the store and the gate, not the next clip's 20 s (a loaded
    # box's margin here; bench/activity_live.py measures the delay).
    assert delay_of(run, first, duration) <= 10.0
    # What came after, idle and beyond the post-roll, is kept back, not sent.
    assert after and all(row["state"] == ClipState.SKIPPED_IDLE.value for row in after), after


async def test_a_sub_stream_is_examined_instead_of_the_recorded_keyframes(
    serve: Callable[[Path], Awaitable[RtspServer]],
    videos: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The recorded stream has a keyframe every 4 s; the sub-stream (160x90) is examined
    twice a second instead, and its frames are placed on the recorded stream's clock by their
    arrival: the walk is found where it is, and the clip is cut at the first recorded
    keyframe after the post-roll."""
    caplog.set_level(logging.INFO, logger="edged.sources.activity_gate")
    recorded = await serve(videos["sparse"])
    sub = await serve(videos["sub"])
    run = await run_camera(tmp_path, recorded.url, f", rtsp: '{sub.url}'")
    first, *after = run.clips
    assert first["state"] == ClipState.QUEUED.value
    assert "(seen live)" in gate_line(caplog, first["id"])
    assert run.live is not None and run.live.substream and run.substream_frames > 10
    active = json.loads(first["active"])
    walk = SCENE.walkers[0]
    # Where the walk is in the scene (3-6 s), give or take the two connections' start.
    assert active and walk.start_s - 2 <= min(active) and max(active) <= walk.end_s + 2
    ended = max(active) + 1
    duration = first["duration_s"]
    # At a recorded keyframe (4 s apart) after the post-roll, or the one after it when the
    # sub-stream's reader lagged a moment; not at the fixed cut (20 s).
    assert ended + ROLL_S - 1.1 <= duration <= ended + ROLL_S + 2 * SPARSE_KEYFRAME_S + 1.1
    assert duration <= CLIP_S - 1, duration
    assert after and all(row["state"] == ClipState.SKIPPED_IDLE.value for row in after), after


async def test_a_sub_stream_that_is_down_leaves_the_clips_to_their_files(
    serve: Callable[[Path], Awaitable[RtspServer]],
    videos: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nobody answers at the sub-stream's address: the camera is recorded all the same, its
    clips cut at the fixed length and examined from their files; the walk is still sent."""
    caplog.set_level(logging.INFO, logger="edged.sources")
    recorded = await serve(videos["walk"])
    run = await run_camera(tmp_path, recorded.url, f", rtsp: 'rtsp://127.0.0.1:{free_port()}/x'")
    first = run.clips[0]
    assert first["state"] == ClipState.QUEUED.value and first["duration_s"] >= CLIP_S - 0.5
    assert json.loads(first["active"]), first
    assert "(its file examined)" in gate_line(caplog, first["id"])
    assert "seen live" not in caplog.text
    assert "activity sub-stream down camera=yard" in caplog.text


async def _judge_left(db: AsyncLedger, state: Path, config: Config) -> None:
    """The clip cut short by the stop is judged by a gate of its own (as at the next start)."""
    gate = ActivityGate(db, config.cameras, on_queued=lambda: None, storage_dir=state, poll_s=0.2)
    task = asyncio.create_task(gate.run())

    async def none_examining() -> bool:
        return not await db.call(db.ledger.clips.in_state, ClipState.EXAMINING)

    try:
        await eventually(none_examining, timeout_s=25, what="every clip judged")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class Captured(LiveActivity):
    """A live examination that keeps the sub-stream's frames it is given."""

    def __init__(self) -> None:
        super().__init__("yard", Settings(), ROLL_S, substream=True)
        self.frames: list[npt.NDArray[np.uint8]] = []

    def substream_frame(self, gray: Gray, at: float) -> None:
        self.frames.append(gray.copy())


async def test_the_sub_stream_reader_sees_the_frames_the_file_holds(
    serve: Callable[[Path], Awaitable[RtspServer]], tmp_path: Path
) -> None:
    """Served by GStreamer, a 640x360 stream at a camera's bitrate comes with some frames in
    several packets: joined before decoding, every examined frame is the one in the file (as
    PyAV decodes the file); decoded as they come, the frames after a split one are garbage."""
    scene = dataclasses.replace(SCENE, width=640, height=360, seconds=12, noise=((0, 5.0),))
    path = await asyncio.to_thread(
        write_video, scene, tmp_path / "sub.mp4", keyframe_s=2.0, crf=28, maxrate_kbit=2000
    )
    server = await serve(path)
    live = Captured()
    reader = SubStream(live, server.url)
    stop = threading.Event()
    worker = threading.Thread(target=reader.run, args=(stop,), daemon=True)
    worker.start()
    try:
        await eventually(lambda: len(live.frames) >= 16, timeout_s=30, what="8 s of frames")
    finally:
        stop.set()
        await asyncio.to_thread(worker.join, 15)
    expected = await asyncio.to_thread(_sampled, path, len(live.frames))
    differences = [
        float(np.abs(a.astype(np.float32) - b).mean())
        for a, b in zip(expected, live.frames[: len(expected)], strict=True)
    ]
    assert max(differences) < 0.5, differences


def _sampled(path: Path, count: int) -> list[npt.NDArray[np.uint8]]:
    """Blocking: the file's frames as the reader examines them, two a second on a grid."""
    found = []
    next_at = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is None or frame.time < next_at:
                continue
            while next_at <= frame.time:
                next_at += 1.0 / SAMPLE_FPS
            found.append(small_gray(frame, DEFAULT_WIDTH))
            if len(found) == count:
                break
    return found
