"""A folder camera's detector carried from one recording to the next (upload: activity), on
real H.264 files cut from one continuous scene and a real ledger: someone who walked in and
stands still is still seen after the cut; a gap or a reload starts a fresh detector; and the
carried detector keeps its time across the cuts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edged.clip import ClipState, NewClip
from edged.config.model import Camera, parse_config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.sources.activity_gate import ActivityGate
from tests.support.activity_scene import write_video
from tests.support.footage import Footage, Standing
from tests.support.waiting import eventually

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
#: Walks in from the left from 3 s to 7 s, then stands still, in view, to the end.
STANDS = Standing(3, 4, x1=0.4)
#: The same from 1 s to 3 s, for recordings with a keyframe every 4 s.
STANDS_EARLY = Standing(1, 2, x1=0.4)
#: No rolls, no events: each recording is sent or kept back by its own activity.
ALONE = "{pre_roll: 0s, post_roll: 0s, events: false}"


def _cameras(activity: str = ALONE) -> tuple[Camera, ...]:
    text = (
        "api: {api_key: k}\ncameras:\n  - name: yard\n    folder: /nvr\n"
        f"    upload: activity\n    activity: {activity}\n"
    )
    return parse_config(text, env={}).cameras


def _footage(folder: Path, walker: Standing, start_s: float, seconds: float, key_s: float) -> Path:
    scene = Footage(seconds=seconds, noise=((0, 2.0),), walkers=(walker,), start_s=start_s)
    return write_video(scene, folder / f"yard-{start_s:03.0f}.mp4", keyframe_s=key_s)


@pytest.fixture(scope="module")
def standing(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """12 s recordings from 0 s, 12 s (right after) and 30 s (after a gap of 6 s)."""
    folder = tmp_path_factory.mktemp("carry")
    return {start: _footage(folder, STANDS, start, 12, 1.0) for start in (0.0, 12.0, 30.0)}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncLedger]:
    opened = AsyncLedger(await asyncio.to_thread(Ledger, tmp_path / "state"))
    yield opened
    await opened.aclose()


async def _add(db: AsyncLedger, path: Path, start_s: float, seconds: float) -> int:
    start = T0 + timedelta(seconds=start_s)
    size = (await asyncio.to_thread(path.stat)).st_size
    new = NewClip("yard", path, size, start, seconds, path.name, examine=True)
    return (await db.call(db.ledger.clips.add, new))[0].id


def _judged(db: AsyncLedger, ids: list[int]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        clips = [await db.call(db.ledger.clips.get, clip_id) for clip_id in ids]
        return all(clip is not None and clip.state is not ClipState.EXAMINING for clip in clips)

    return check


async def _active(db: AsyncLedger, clip_id: int) -> tuple[int, ...]:
    found = await db.call(db.ledger.activity.of, clip_id)
    assert found is not None
    return found.active


async def _gate_until(gate: ActivityGate, done: Callable[[], Awaitable[bool]]) -> None:
    task = asyncio.create_task(gate.run())
    try:
        await eventually(done, timeout_s=30, what="the recordings judged")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_someone_standing_still_across_a_cut_is_seen_and_a_gap_starts_afresh(
    db: AsyncLedger, standing: dict[float, Path], tmp_path: Path
) -> None:
    """The first recording sees the walk in; the next, right after it, shows the figure
    standing still the whole time: with the detector carried over it is still a change from
    the yard as it was (a fresh detector would take it for the background and keep the
    recording back). After a gap of 6 s the detector starts afresh, and the figure is
    background."""
    ids = [await _add(db, path, start, 12) for start, path in standing.items()]
    gate = ActivityGate(db, _cameras(), on_queued=lambda: None, storage_dir=tmp_path, poll_s=0.1)
    await _gate_until(gate, _judged(db, ids))

    states = [(await db.call(db.ledger.clips.get, clip_id)).state for clip_id in ids]  # type: ignore[union-attr]
    assert states == [ClipState.QUEUED, ClipState.QUEUED, ClipState.SKIPPED_IDLE]
    walk_in = await _active(db, ids[0])
    assert walk_in and min(walk_in) >= STANDS.start_s, walk_in  # from its own start
    assert await _active(db, ids[1]) == tuple(range(12))  # every second of it


async def test_a_reload_starts_a_fresh_detector(
    db: AsyncLedger, standing: dict[float, Path], tmp_path: Path
) -> None:
    """The same two recordings with the camera's settings changed between them: the second
    is examined with the new settings and a detector of its own."""
    cameras = _cameras()
    gate = ActivityGate(db, cameras, on_queued=lambda: None, storage_dir=tmp_path, poll_s=0.1)
    task = asyncio.create_task(gate.run())
    try:
        first = await _add(db, standing[0.0], 0, 12)
        await eventually(_judged(db, [first]), timeout_s=30, what="the first recording judged")
        gate.set_cameras(_cameras("{pre_roll: 0s, post_roll: 0s, events: false, sensitivity: 0.6}"))
        second = await _add(db, standing[12.0], 12, 12)
        gate.wake.set()
        await eventually(_judged(db, [second]), timeout_s=30, what="the second recording judged")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    clip = await db.call(db.ledger.clips.get, second)
    assert clip is not None and clip.state is ClipState.SKIPPED_IDLE
    assert await _active(db, first)


async def test_a_carried_detector_keeps_its_time_across_the_cuts(
    db: AsyncLedger, tmp_path: Path
) -> None:
    """4 s recordings of a camera with a keyframe every 4 s: one frame each. Someone walks in
    and stands still; a pixel that changed for most of the last minute is busy, not activity,
    so the detector stops counting the figure after about 45 s, as time passes on its clock.
    Fed every recording's frame at 0 s, it would never see time pass and take the figure for
    activity for ever; a fresh detector for each would see nothing at all."""
    folder = tmp_path / "nvr"
    folder.mkdir()
    starts = [4.0 * index for index in range(16)]
    paths = await asyncio.gather(
        *(asyncio.to_thread(_footage, folder, STANDS_EARLY, start, 4, 4.0) for start in starts)
    )
    ids = [await _add(db, path, start, 4) for start, path in zip(starts, paths, strict=True)]
    gate = ActivityGate(db, _cameras(), on_queued=lambda: None, storage_dir=tmp_path, poll_s=0.1)
    await _gate_until(gate, _judged(db, ids))

    active = [bool(await _active(db, clip_id)) for clip_id in ids]
    assert not active[0], active  # its only frame, before the walk, is the background
    assert all(active[1:9]), active  # standing there, a change from the yard as it was
    assert not any(active[12:]), active  # for most of the last minute: busy, not activity
