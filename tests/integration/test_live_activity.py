"""`upload: activity` on a live RTSP camera (GStreamer's RTSP server, real H.264 of the
scripted scene): the stream is examined as it records, the clip ends once the event's
post-roll has passed, not at the fixed cut, the gate uses what was seen live, and the event
is queued a post-roll and a keyframe after the walk ended."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from edged.activity import examine_file
from edged.clip import ClipState
from edged.config.cameras import RtspCamera
from edged.config.model import Config, parse_config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.sources.activity_gate import ActivityGate
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


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("live")
    return write_video(SCENE, folder / "walk.mp4", keyframe_s=KEYFRAME_S)


@pytest.fixture
async def camera(walk: Path) -> AsyncIterator[RtspServer]:
    server = RtspServer(walk, free_port(), audio="none")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.kill)


async def test_an_event_on_a_live_camera_closes_a_post_roll_after_it_not_at_the_cut(
    camera: RtspServer, walk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edged.sources.activity_gate")
    state = tmp_path / "state"
    config = parse_config(
        f"api:\n  api_key: k\ncameras:\n  - name: yard\n    rtsp: {camera.url}\n"
        f"    clip_seconds: {CLIP_S}\n    upload: activity\n"
        f"    activity: {{pre_roll: {ROLL_S:g}s, post_roll: {ROLL_S:g}s}}\n"
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
                    first_clip_queued, timeout_s=30, interval_s=0.05, what="a clip sent"
                )
            finally:
                for task in tasks:
                    task.cancel()  # the clip in progress is closed short, and judged
        await _judge_left(db, state, config)
        clips = await rows()
    finally:
        await db.aclose()

    first, *after = clips
    assert first["state"] == ClipState.QUEUED.value and first["id"] in queued_at
    # The gate used what the live examination saw, and it agrees with the file's own.
    assert "seen live" in caplog.text
    active = json.loads(first["active"])
    assert active and active == list(examine_file(Path(first["path"])).active)
    # Cut a post-roll (and at most a keyframe) after the activity ended, not at 20 s.
    ended = max(active) + 1
    duration = first["duration_s"]
    assert ended + ROLL_S - 0.1 <= duration <= ended + ROLL_S + KEYFRAME_S + 0.1, duration
    assert duration < CLIP_S - 5
    # Queued soon after: the post-roll, a keyframe, the store and the gate (a loaded box's
    # margin here; bench/activity_live.py measures it).
    start = datetime.fromisoformat(first["start_at"]).timestamp()
    delay = queued_at[first["id"]] - (start + ended)
    assert delay <= ROLL_S + KEYFRAME_S + 4.0, delay
    # What came after, idle and beyond the post-roll, is kept back, not sent.
    assert after and all(row["state"] == ClipState.SKIPPED_IDLE.value for row in after), after


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
