"""The storage quota on real files and a real ledger: done clips lose their file, and over
storage.max_bytes the oldest clips not yet uploaded are dropped (logged, recorded, counted),
never a file of an NVR folder; with a live camera the disk stays within the quota."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edged.clip import NewClip
from edged.config import StorageConfig
from edged.ledger import Ledger
from edged.ledger_async import AsyncLedger
from edged.samples import make_clip
from edged.sources.rtsp_files import clips_root, source_key
from edged.storage import StorageQuota
from tests.conftest import eventually
from tests.integration.test_rtsp import (
    ServerFactory,
    camera_yaml,
    rtsp_server,
    running_cameras,
    stream_file,
)

__all__ = ["rtsp_server", "stream_file"]  # fixtures used here

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncLedger]:
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    handle = AsyncLedger(ledger)
    yield handle
    await handle.aclose()


async def rtsp_clip(db: AsyncLedger, storage: Path, minute: int) -> int:
    """A clip as the RTSP source leaves it: under storage/clips, keyed by its path."""
    start = T0 + timedelta(minutes=minute)
    path = clips_root(storage) / "cam" / f"{start:%Y-%m-%d}" / f"{start:%H%M%S}.mp4"
    await asyncio.to_thread(make_clip, path, seconds=1.0)
    size = path.stat().st_size
    new = NewClip("cam", path, size, start, 1.0, source_key(storage, path))
    clip, _ = await db.run(db.ledger.add_clip, new)
    return clip.id


async def done(db: AsyncLedger, clip_id: int) -> None:
    ledger = db.ledger
    assert await db.run(ledger.take_for_upload, clip_id) is not None
    await db.run(ledger.mark_submitted, clip_id, f"task-{clip_id}")
    await db.run(ledger.record_result, clip_id, task_id=None, text="ok", tokens={}, raw="{}")
    await db.run(ledger.mark_done, clip_id)


async def states(db: AsyncLedger) -> dict[int, str]:
    rows = await db.run(db.ledger.execute, "SELECT id, state FROM clips")
    return {row["id"]: row["state"] for row in rows}


async def events(db: AsyncLedger, clip_id: int) -> list[str]:
    rows = await db.run(
        db.ledger.execute, "SELECT kind FROM events WHERE clip_id=? ORDER BY id", (clip_id,)
    )
    return [row["kind"] for row in rows]


async def test_over_quota_the_oldest_unsent_clips_are_dropped_never_nvr_files(
    db: AsyncLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    storage = tmp_path / "state"
    nvr = await asyncio.to_thread(make_clip, tmp_path / "nvr" / "yard-0001.mp4", seconds=1.0)
    nvr_clip, _ = await db.run(
        db.ledger.add_clip, NewClip("yard", nvr, nvr.stat().st_size, source_key="file:nvr")
    )
    uploaded = await rtsp_clip(db, storage, 0)
    waiting = [await rtsp_clip(db, storage, minute) for minute in range(1, 6)]
    await done(db, uploaded)
    size = (await db.run(db.ledger.get, waiting[0])).size  # type: ignore[union-attr]
    quota = StorageQuota(db, StorageConfig(dir=storage, max_bytes=2 * size + size // 2))

    with caplog.at_level(logging.ERROR, logger="edged.storage"):
        usage = await quota.enforce()

    assert usage.used_bytes <= 2 * size + size // 2
    now = await states(db)
    assert [now[c] for c in waiting] == ["dropped"] * 3 + ["queued"] * 2
    assert now[uploaded] == "done" and now[nvr_clip.id] == "queued"
    assert nvr.exists(), "a file of an NVR folder is never deleted"
    for clip_id in (uploaded, *waiting[:3]):
        stored = await db.run(db.ledger.get, clip_id)
        assert stored is not None and not stored.path.exists()
        assert "file_deleted" in await events(db, clip_id)
    for clip_id in waiting[:3]:
        stored = await db.run(db.ledger.get, clip_id)
        assert stored is not None and "storage.max_bytes" in (stored.last_error or "")
        assert (await events(db, clip_id))[-2:] == ["dropped", "file_deleted"]
    drops = [r for r in caplog.records if "dropped camera=cam" in r.getMessage()]
    assert [f"clip={c} " in r.getMessage() for r, c in zip(drops, waiting, strict=False)] == [
        True
    ] * 3
    assert quota.stats.dropped == 3 and quota.stats.deleted == 1

    again = await quota.enforce()  # within the quota now: nothing more goes
    assert again.used_bytes == usage.used_bytes and quota.stats.dropped == 3


async def test_uploaded_clips_are_kept_for_keep_uploaded_unless_space_is_needed(tmp_path: Path):
    storage = tmp_path / "state"
    clock = Clock()
    db = AsyncLedger(await asyncio.to_thread(Ledger, storage, clock=clock))
    try:
        await _keep_uploaded(db, storage, clock)
    finally:
        await db.aclose()


async def _keep_uploaded(db: AsyncLedger, storage: Path, clock: Clock) -> None:
    first, second, pending = [await rtsp_clip(db, storage, minute) for minute in range(3)]
    for clip_id in (first, second):
        await done(db, clip_id)
    paths = {c: (await db.run(db.ledger.get, c)).path for c in (first, second, pending)}  # type: ignore[union-attr]
    roomy = StorageConfig(dir=storage, keep_uploaded=3600.0)
    quota = StorageQuota(db, roomy, clock=clock)

    await quota.enforce()
    assert all(path.exists() for path in paths.values())
    clock.now += 3601
    await quota.enforce()
    assert [paths[c].exists() for c in (first, second, pending)] == [False, False, True]

    # Tight space: uploaded clips within keep_uploaded go before anything unsent is dropped.
    later = [await rtsp_clip(db, storage, minute) for minute in (3, 4)]
    await done(db, later[0])
    size = paths[pending].stat().st_size
    tight = StorageQuota(db, StorageConfig(dir=storage, max_bytes=2 * size, keep_uploaded=3600.0))
    await tight.enforce()
    now = await states(db)
    assert tight.stats.dropped == 0 and now[pending] == "queued" and now[later[1]] == "queued"
    assert not (await db.run(db.ledger.get, later[0])).path.exists()  # type: ignore[union-attr]


async def test_a_live_camera_under_a_small_quota_keeps_the_disk_bounded(
    rtsp_server: ServerFactory, tmp_path: Path
):
    server = await rtsp_server()
    max_bytes = 60_000  # about one and a half clips of the test stream
    storage = f"  max_bytes: {max_bytes}\n"
    async with running_cameras(tmp_path, camera_yaml("lot", server.url), storage=storage) as cams:
        quota = StorageQuota(cams.db, StorageConfig(dir=cams.storage, max_bytes=max_bytes))
        highest = 0

        async def dropped_two() -> bool:
            nonlocal highest
            usage = await quota.enforce()
            highest = max(highest, usage.used_bytes)
            return quota.stats.dropped >= 2

        await eventually(dropped_two, timeout_s=30, interval_s=0.2, what="two clips dropped")
        clips = await cams.clips("lot")

    assert highest <= max_bytes
    assert [c["state"] for c in clips[:2]] == ["dropped", "dropped"]
    assert not any(await asyncio.to_thread(_exist, [c["path"] for c in clips[:2]]))


def _exist(paths: list[str]) -> list[bool]:
    return [Path(path).exists() for path in paths]
