"""The storage quota on real files and a real ledger: done clips lose their file, and over
storage.max_bytes the oldest clips not yet uploaded are dropped (logged, recorded, counted),
never a file of an NVR folder; a real `edged run` recording a live camera keeps the disk
within the quota by its own quota stage, sampled from outside as it runs."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edged.clip import ClipState, NewClip
from edged.config.model import StorageConfig
from edged.emulator import Emulator
from edged.ledger.activity import ClipActivityRecord
from edged.ledger.results import Tokens
from edged.ledger.store import LEDGER_FILE, Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.samples import make_clip
from edged.service.storage import StorageQuota
from edged.sources.rtsp_files import clips_root, source_key
from tests.support.edged import write_config
from tests.support.ledger import rows
from tests.support.rtsp import ServerFactory, camera_yaml

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


async def rtsp_clip(db: AsyncLedger, storage: Path, minute: int, *, examine: bool = False) -> int:
    """A clip as the RTSP source leaves it: under storage/clips, keyed by its path."""
    start = T0 + timedelta(minutes=minute)
    path = clips_root(storage) / "cam" / f"{start:%Y-%m-%d}" / f"{start:%H%M%S}.mp4"
    await asyncio.to_thread(make_clip, path, seconds=1.0)
    size = path.stat().st_size
    new = NewClip("cam", path, size, start, 1.0, source_key(storage, path), examine=examine)
    clip, _ = await db.call(db.ledger.clips.add, new)
    return clip.id


async def done(db: AsyncLedger, clip_id: int) -> None:
    ledger = db.ledger
    assert await db.call(ledger.uploads.take_for_upload, clip_id) is not None
    await db.call(ledger.uploads.mark_submitted, clip_id, f"task-{clip_id}")
    await db.call(
        ledger.results.record_result, clip_id, task_id=None, text="ok", tokens=Tokens(), raw="{}"
    )
    await db.call(ledger.results.mark_done, clip_id)


async def states(db: AsyncLedger) -> dict[int, str]:
    rows = await db.call(db.ledger.db.rows, "SELECT id, state FROM clips")
    return {row["id"]: row["state"] for row in rows}


async def events(db: AsyncLedger, clip_id: int) -> list[str]:
    rows = await db.call(
        db.ledger.db.rows, "SELECT kind FROM events WHERE clip_id=? ORDER BY id", (clip_id,)
    )
    return [row["kind"] for row in rows]


async def test_over_quota_the_oldest_unsent_clips_are_dropped_never_nvr_files(
    db: AsyncLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    storage = tmp_path / "state"
    nvr = await asyncio.to_thread(make_clip, tmp_path / "nvr" / "yard-0001.mp4", seconds=1.0)
    nvr_clip, _ = await db.call(
        db.ledger.clips.add, NewClip("yard", nvr, nvr.stat().st_size, source_key="file:nvr")
    )
    uploaded = await rtsp_clip(db, storage, 0)
    waiting = [await rtsp_clip(db, storage, minute) for minute in range(1, 6)]
    await done(db, uploaded)
    size = (await db.call(db.ledger.clips.get, waiting[0])).size  # type: ignore[union-attr]
    quota = StorageQuota(db, StorageConfig(dir=storage, max_bytes=2 * size + size // 2))

    with caplog.at_level(logging.ERROR, logger="edged.service.storage"):
        usage = await quota.enforce()

    assert usage.used_bytes <= 2 * size + size // 2
    now = await states(db)
    assert [now[c] for c in waiting] == ["dropped"] * 3 + ["queued"] * 2
    assert now[uploaded] == "done" and now[nvr_clip.id] == "queued"
    assert nvr.exists(), "a file of an NVR folder is never deleted"
    for clip_id in (uploaded, *waiting[:3]):
        stored = await db.call(db.ledger.clips.get, clip_id)
        assert stored is not None and not stored.path.exists()
        assert "file_deleted" in await events(db, clip_id)
    for clip_id in waiting[:3]:
        stored = await db.call(db.ledger.clips.get, clip_id)
        assert stored is not None and "storage.max_bytes" in (stored.last_error or "")
        assert (await events(db, clip_id))[-2:] == ["dropped", "file_deleted"]
    drops = [r for r in caplog.records if "dropped camera=cam" in r.getMessage()]
    assert [f"clip={c} " in r.getMessage() for r, c in zip(drops, waiting, strict=False)] == [
        True
    ] * 3
    assert quota.stats.dropped == 3 and quota.stats.deleted == 1

    again = await quota.enforce()  # within the quota now: nothing more goes
    assert again.used_bytes == usage.used_bytes and quota.stats.dropped == 3


async def test_over_quota_clips_without_activity_go_before_older_ones_that_may_show_someone(
    db: AsyncLedger, tmp_path: Path
):
    storage = tmp_path / "state"
    older = [await rtsp_clip(db, storage, minute) for minute in range(0, 3)]
    idle = [await rtsp_clip(db, storage, minute, examine=True) for minute in range(3, 5)]
    for clip_id in idle:  # a gate found nothing in them
        found = ClipActivityRecord(1.0, (), 0.0, 0.0, 1)
        assert await db.call(db.ledger.activity.examined, clip_id, found) is ClipState.SKIPPED_IDLE
    size = (await db.call(db.ledger.clips.get, older[0])).size  # type: ignore[union-attr]
    quota = StorageQuota(db, StorageConfig(dir=storage, max_bytes=2 * size + size // 2))

    await quota.enforce()

    now = await states(db)
    assert [now[c] for c in idle] == ["dropped", "dropped"]
    assert [now[c] for c in older] == ["dropped", "queued", "queued"]  # then the oldest


async def test_the_files_of_clips_merged_into_an_event_go_only_once_the_event_clip_is_done(
    db: AsyncLedger, tmp_path: Path
):
    """Until its event clip is analysed, a merged clip's footage is kept: if the event clip
    failed, nothing would be left of it."""
    storage = tmp_path / "state"
    members = [await rtsp_clip(db, storage, minute, examine=True) for minute in range(2)]
    for clip_id in members:
        found = ClipActivityRecord(1.0, (0,), 9.0, 0.1, 1)
        assert await db.call(
            db.ledger.activity.examined, clip_id, found, sent_to=ClipState.IN_EVENT
        )
    paths = [(await db.call(db.ledger.clips.get, c)).path for c in members]  # type: ignore[union-attr]
    event_path = clips_root(storage) / ".events" / "cam" / f"{members[0]}.mp4"
    await asyncio.to_thread(make_clip, event_path, seconds=2.0)
    event = NewClip(
        "cam", event_path, event_path.stat().st_size, T0, 2.0, source_key(storage, event_path)
    )
    event_clip = await db.call(db.ledger.event_clips.merge, members, event)
    quota = StorageQuota(db, StorageConfig(dir=storage))  # keep_uploaded: 0, at once

    await quota.enforce()
    assert all(path.exists() for path in paths)  # the event clip is not done yet

    await done(db, event_clip.id)
    await quota.enforce()
    assert not any(path.exists() for path in paths)
    assert not event_path.exists()  # done itself, like any clip of edged's own
    for clip_id in members:
        assert "file_deleted" in await events(db, clip_id)


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
    paths = {c: (await db.call(db.ledger.clips.get, c)).path for c in (first, second, pending)}  # type: ignore[union-attr]
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
    assert not (await db.call(db.ledger.clips.get, later[0])).path.exists()  # type: ignore[union-attr]


@pytest.mark.parametrize("api", ["up", "down"])
async def test_edged_run_keeps_its_disk_under_max_bytes_by_its_own_quota(
    emulator: Emulator, rtsp_server: ServerFactory, edged_run, tmp_path: Path, api: str
):
    """A real `edged run` recording a camera into a quota of 1.5 clips, the disk sampled from
    outside all along (not right after a quota round the test ran itself). API up: clips
    uploaded and done are kept (keep_uploaded 1h) until the quota needs their space, then
    edged deletes them, each only after it is done, and drops nothing. API down (503): the
    oldest clips not yet uploaded are dropped, logged, and their files gone."""
    emulator.options.error_rate = 1.0 if api == "down" else 0.0
    server = await rtsp_server()
    max_bytes = 60_000  # about one and a half clips of the test stream
    camera = "cameras:\n" + camera_yaml("lot", server.url)
    config = write_config(tmp_path, emulator.url, extra=camera)
    quota = f"storage:\n  max_bytes: {max_bytes}\n  keep_uploaded: 1h\n  min_free: 0\n"
    config.write_text(config.read_text().replace("storage:\n", quota))
    clips_dir = tmp_path / "state" / "clips"
    db = tmp_path / "state" / LEDGER_FILE
    gone_sql = (
        "SELECT c.id, c.path, c.state, c.done_at, e.at AS deleted_at, e.detail FROM clips c"
        " JOIN events e ON e.clip_id = c.id AND e.kind = 'file_deleted' ORDER BY c.id"
    )
    samples: list[int] = []

    async def three_gone() -> bool:
        samples.append(await asyncio.to_thread(tree_bytes, clips_dir))
        if not db.exists():
            return False
        try:
            return len(await asyncio.to_thread(rows, db, gone_sql)) >= 3
        except sqlite3.OperationalError:
            return False  # the tables are not there yet

    run = await edged_run(config)
    await run.until(three_gone, "three clips' files deleted by edged", timeout_s=60)
    code = await run.stop(signal.SIGTERM)
    err = run.log()
    assert code == 0, err
    gone = await asyncio.to_thread(rows, db, gone_sql)
    clips = await asyncio.to_thread(rows, db, "SELECT state, size FROM clips")

    assert not any(await asyncio.to_thread(_exist, [r["path"] for r in gone]))
    if api == "up":
        assert {r["detail"] for r in gone} == {"uploaded; space needed before keep_uploaded"}
        assert all(r["done_at"] is not None and r["done_at"] <= r["deleted_at"] for r in gone)
        assert "dropped" not in {c["state"] for c in clips}, "done clips go first"
    else:
        assert {(r["state"], r["detail"]) for r in gone} == {("dropped", "dropped")}
        assert err.count("storage full: dropped camera=lot") == len(gone)
    sizes = [c["size"] for c in clips if c["size"]]
    # A round of the quota follows every finished clip: beyond max_bytes there are at most
    # the clip in progress and the one just finished (uploading, so not yet deletable).
    bound = max_bytes + 2 * max(sizes)
    assert max(samples) <= bound, (max(samples), max_bytes, sizes)
    assert sum(sizes) > bound, "the camera wrote more than the bound: it was enforced"


def tree_bytes(root: Path) -> int:
    """Blocking: bytes of every file under `root`, as `du --apparent-size` would count."""
    total = 0
    for path in root.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except FileNotFoundError:
            continue  # deleted while walking
    return total


def _exist(paths: list[str]) -> list[bool]:
    return [Path(path).exists() for path in paths]
