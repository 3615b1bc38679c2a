"""The folder source on real files written the way NVRs write them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import ObservedWatch

from edged.clip import Clip, ClipState
from edged.config.model import parse_config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.samples import make_clip, make_padded_file
from edged.sources.folder import FolderSource
from edged.sources.folder_watch import SharedObserver
from tests.support.edged import run_edged, write_config
from tests.support.waiting import eventually


class Sources:
    """Starts FolderSources on tmp_path/nvr with given camera options; stops them all after."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self._running: dict[int, tuple[asyncio.Task[None], AsyncLedger]] = {}

    async def __call__(
        self, options: str = "", *, settle: str = "0.5s", tick_s: float = 0.05
    ) -> AsyncLedger:
        config = parse_config(
            f"api: {{api_key: k}}\ncameras:\n  - name: cam\n"
            f"    folder: {self._tmp_path / 'nvr'}\n    settle: {settle}\n{options}"
        )
        db = AsyncLedger(await asyncio.to_thread(Ledger, self._tmp_path / "state"))
        source = FolderSource(db, config.cameras[0], tick_s=tick_s)
        self._running[id(db)] = (asyncio.create_task(source.run()), db)
        await asyncio.wait_for(source.ready.wait(), 20)
        return db

    async def stop(self, db: AsyncLedger) -> None:
        task, _ = self._running.pop(id(db))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await db.aclose()

    async def stop_all(self) -> None:
        for _, db in list(self._running.values()):
            await self.stop(db)


@pytest.fixture
async def run_source(tmp_path: Path) -> AsyncIterator[Sources]:
    (tmp_path / "nvr").mkdir()
    sources = Sources(tmp_path)
    yield sources
    await sources.stop_all()


async def clips(db: AsyncLedger) -> list[Clip]:
    return await db.call(db.ledger.clips.in_state, *ClipState)


async def recording(tmp_path: Path, name: str = "rec.mp4", seconds: float = 2) -> bytes:
    source = tmp_path / "scratch" / name
    await asyncio.to_thread(make_clip, source, seconds=seconds)
    return await asyncio.to_thread(source.read_bytes)


def _write_in_chunks(path: Path, data: bytes, reopen: bool, chunk: int) -> None:
    if reopen:
        for offset in range(0, len(data), chunk):
            with open(path, "ab") as piece:
                piece.write(data[offset : offset + chunk])
            time.sleep(0.002)  # pacing of the writer, not synchronisation
        return
    with open(path, "wb") as handle:
        for offset in range(0, len(data), chunk):
            handle.write(data[offset : offset + chunk])
            handle.flush()
            time.sleep(0.002)


async def write_in_chunks(path: Path, data: bytes, *, reopen: bool, chunk: int = 2048) -> None:
    """An NVR writing a recording in place, slowly, on its own thread; `reopen` closes the
    file between chunks."""
    await asyncio.to_thread(_write_in_chunks, path, data, reopen, chunk)


async def settled_count(db: AsyncLedger, expected: int) -> list[Clip]:
    await eventually(lambda: _count(db, expected), what=f"{expected} clips in the ledger")
    return await clips(db)


async def _count(db: AsyncLedger, expected: int) -> bool:
    return len(await clips(db)) >= expected


@pytest.mark.parametrize("reopen", [False, True], ids=["one-handle", "append-and-close"])
async def test_file_written_in_place_is_queued_once_complete(
    run_source: Sources, tmp_path: Path, reopen: bool
):
    db = await run_source("    since: 1h\n")
    data = await recording(tmp_path)
    target = tmp_path / "nvr" / "rec.mp4"
    await write_in_chunks(target, data, reopen=reopen)
    [clip] = await settled_count(db, 1)
    assert clip.size == len(data) and clip.camera == "cam"
    assert clip.duration_s == pytest.approx(2.0, abs=0.2)


async def test_closed_file_is_queued_without_waiting_for_settle(run_source: Sources, tmp_path):
    db = await run_source("    since: 1h\n", settle="1h")
    data = await recording(tmp_path)
    await asyncio.to_thread((tmp_path / "nvr" / "closed.mp4").write_bytes, data)
    [clip] = await settled_count(db, 1)
    assert clip.path.name == "closed.mp4"


async def test_temp_name_then_rename_is_queued_once(run_source: Sources, tmp_path: Path):
    db = await run_source("    since: 1h\n")
    data = await recording(tmp_path)
    part = tmp_path / "nvr" / "day" / "rec.mp4.part"
    part.parent.mkdir()
    await write_in_chunks(part, data, reopen=False)
    part.rename(part.with_name("rec.mp4"))
    [clip] = await settled_count(db, 1)
    assert clip.path == tmp_path / "nvr" / "day" / "rec.mp4"


async def test_hard_link_from_incomplete_name(run_source: Sources, tmp_path: Path):
    db = await run_source("    since: 1h\n")
    data = await recording(tmp_path)
    incomplete = tmp_path / "nvr" / "incomplete.mp4"
    await write_in_chunks(incomplete, data, reopen=False)
    final = tmp_path / "nvr" / "1234-video.mp4"
    os.link(incomplete, final)
    incomplete.unlink()
    [clip] = await settled_count(db, 1)
    assert clip.path == final


async def test_polling_mode_for_network_shares(run_source: Sources, tmp_path: Path):
    db = await run_source("    since: 1h\n    poll: 0.2s\n")
    data = await recording(tmp_path)
    await write_in_chunks(tmp_path / "nvr" / "share.mp4", data, reopen=True)
    [clip] = await settled_count(db, 1)
    assert clip.size == len(data)


async def test_invalid_file_is_reported_once_and_skipped(
    run_source: Sources, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.ERROR, logger="edged.sources.folder_candidates")
    db = await run_source("    since: 1h\n")
    await asyncio.to_thread((tmp_path / "nvr" / "broken.mp4").write_bytes, b"\0" * 5000)
    data = await recording(tmp_path)
    await asyncio.to_thread((tmp_path / "nvr" / "good.mp4").write_bytes, data)
    await settled_count(db, 1)

    def reported() -> bool:
        return any("broken.mp4" in r.getMessage() for r in caplog.records)

    await eventually(reported, what="the broken file to be reported")
    # Let several settle periods pass: the report must not repeat.
    end = time.monotonic() + 1.5
    await eventually(lambda: time.monotonic() > end, what="a few settle periods")
    assert sum("broken.mp4" in r.getMessage() for r in caplog.records) == 1
    assert [c.path.name for c in await clips(db)] == ["good.mp4"]


async def test_ignored_names_are_never_queued(run_source: Sources, tmp_path: Path):
    db = await run_source("    since: 1h\n")
    data = await recording(tmp_path)
    for name in (".hidden.mp4", "x.tmp", "incomplete.123.mp4", "rec.mp4.part"):
        await asyncio.to_thread((tmp_path / "nvr" / name).write_bytes, data)
    await asyncio.to_thread((tmp_path / "nvr" / "real.mp4").write_bytes, data)
    await settled_count(db, 1)
    end = time.monotonic() + 1.0
    await eventually(lambda: time.monotonic() > end, what="two settle periods")
    assert [c.path.name for c in await clips(db)] == ["real.mp4"]


async def test_catch_up_oldest_first_bounded_by_since(run_source: Sources, tmp_path: Path):
    data = await recording(tmp_path)
    now = time.time()
    for name, age_s in (("new.mp4", 60), ("old.mp4", 600), ("ancient.mp4", 7200)):
        path = tmp_path / "nvr" / name
        path.write_bytes(data)
        os.utime(path, (now - age_s, now - age_s))
    db = await run_source("    since: 1h\n")
    found = await settled_count(db, 2)
    assert [c.path.name for c in found] == ["old.mp4", "new.mp4"]


async def test_restart_rename_and_touch_do_not_enqueue_twice(run_source: Sources, tmp_path: Path):
    data = await recording(tmp_path)
    path = tmp_path / "nvr" / "rec.mp4"
    path.write_bytes(data)
    db = await run_source("    since: 1h\n")
    [first] = await settled_count(db, 1)
    await run_source.stop(db)
    path.rename(path.with_name("renamed.mp4"))
    os.utime(path.with_name("renamed.mp4"))  # a touch: new mtime, same content
    data_b = await recording(tmp_path, "other.mp4", seconds=3)
    (tmp_path / "nvr" / "other.mp4").write_bytes(data_b)
    again = await run_source("    since: 1h\n")
    found = await settled_count(again, 2)
    assert [c.path.name for c in found] == ["rec.mp4", "other.mp4"]
    assert found[0].id == first.id


async def test_since_start_skips_the_archive_on_first_run(run_source: Sources, tmp_path: Path):
    data = await recording(tmp_path)
    archived = tmp_path / "nvr" / "archive.mp4"
    archived.write_bytes(data)
    os.utime(archived, (time.time() - 60, time.time() - 60))
    db = await run_source()
    await asyncio.to_thread((tmp_path / "nvr" / "fresh.mp4").write_bytes, data + b"")
    found = await settled_count(db, 1)
    assert [c.path.name for c in found] == ["fresh.mp4"]


def _frigate_file(root: Path, day: str, hour: str, camera: str, name: str, data: bytes) -> Path:
    path = root / day / hour / camera / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("only", [None, "front_door"])
async def test_preset_folder_yields_clips_per_camera_with_path_times(
    run_source: Sources, tmp_path: Path, only: str | None
):
    options = "    since: 1h\n    preset: frigate\n"
    if only:
        options += f"    cameras: [{only}]\n"
    db = await run_source(options)
    data = await recording(tmp_path)
    root = tmp_path / "nvr"
    await asyncio.to_thread(
        _frigate_file, root, "2024-05-01", "13", "front_door", "05.12.mp4", data
    )
    await asyncio.to_thread(
        _frigate_file, root, "2024-05-01", "13", "back_yard", "07.30.mp4", data + b""
    )
    await asyncio.to_thread((root / "stray.mp4").write_bytes, data)  # not in Frigate's layout
    expected = 1 if only else 2
    found = await settled_count(db, expected)
    end = time.monotonic() + 1.0
    await eventually(lambda: time.monotonic() > end, what="two settle periods")
    found = await clips(db)
    by_camera = {c.camera: c for c in found}
    assert len(found) == expected
    assert by_camera["front_door"].start == datetime(2024, 5, 1, 13, 5, 12, tzinfo=UTC)
    if not only:
        assert by_camera["back_yard"].start == datetime(2024, 5, 1, 13, 7, 30, tzinfo=UTC)


async def test_backfill_queues_a_time_range_once_and_again_on_request(tmp_path: Path):
    data = await recording(tmp_path)
    root = tmp_path / "nvr"
    for hour, minute in (("11", "00.00"), ("13", "05.12"), ("13", "40.00"), ("15", "00.00")):
        await asyncio.to_thread(
            _frigate_file, root, "2024-05-01", hour, "front_door", f"{minute}.mp4", data
        )
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        extra=f"cameras:\n  - name: nvr\n    folder: {root}\n    preset: frigate\n",
    )
    span = ["--from", "2024-05-01T12:00+00:00", "--to", "2024-05-01T14:00+00:00"]
    code, out, err = await run_edged("backfill", "-c", str(config), "--camera", "front_door", *span)
    assert code == 0, err
    assert "2 recordings of front_door" in out and "queued 2," in out
    code, out, _ = await run_edged("backfill", "-c", str(config), "--camera", "front_door", *span)
    assert "queued 0, already in the ledger 2" in out
    code, out, _ = await run_edged(
        "backfill", "-c", str(config), "--camera", "front_door", *span, "--again"
    )
    assert "queued 2," in out
    ledger = Ledger(tmp_path / "state")
    starts = sorted(c.start for c in ledger.clips.in_state(ClipState.QUEUED))
    ledger.close()
    assert len(starts) == 4 and starts[0] == datetime(2024, 5, 1, 13, 5, 12, tzinfo=UTC)
    code, _, err = await run_edged(
        "backfill", "-c", str(config), "--camera", "front_door", "--from", "yesterday"
    )
    assert code == 2 and "expected an ISO time" in err


def _write_like_nvr(folder: Path, relative: str, data: bytes, how: str) -> Path:
    """Blocking: put a recording at `relative` the way an NVR does."""
    final = folder / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    if how == "in-place":
        _write_in_chunks(final, data, reopen=False, chunk=4096)
    elif how == "rename":
        temporary = final.with_name(final.name + ".tmp")
        _write_in_chunks(temporary, data, reopen=False, chunk=4096)
        temporary.rename(final)
    elif how == "hard-link":
        incomplete = final.with_name("incomplete.mp4")
        _write_in_chunks(incomplete, data, reopen=True, chunk=4096)
        os.link(incomplete, final)
        incomplete.unlink()
    return final


PRESET_CASES = [
    # preset options, path, writer, expected camera, expected UTC start (None: mtime - length)
    (
        "preset: frigate",
        "2024-05-01/13/front_door/05.12.mp4",
        "rename",
        "front_door",
        datetime(2024, 5, 1, 13, 5, 12, tzinfo=UTC),
    ),
    ("preset: zoneminder", "3/2024-05-01/1234/1234-video.mp4", "hard-link", "3", None),
    (
        "preset: blueiris\n    timezone: Europe/Berlin",
        "FrontDoor.20240501_130512.mp4",
        "in-place",
        "FrontDoor",
        datetime(2024, 5, 1, 11, 5, 12, tzinfo=UTC),
    ),
    # 02:30 on the spring-forward night never happened in Berlin: read with the offset before
    (
        "preset: blueiris\n    timezone: Europe/Berlin",
        "Gate.20240331_023000.mp4",
        "in-place",
        "Gate",
        datetime(2024, 3, 31, 1, 30, tzinfo=UTC),
    ),
    (
        "preset: synology",
        "Front Door/20240501PM/Front Door20240501-150512-1714568712.mp4",
        "rename",
        "Front_Door",
        datetime(2024, 5, 1, 13, 5, 12, tzinfo=UTC),
    ),
    # 01:30 on the fall-back night happened twice in New York: the first one is taken
    (
        "preset: custom\n    timezone: America/New_York\n    path_regex: "
        r"'(?P<camera>[^/]+)/(?P<Y>\d{4})(?P<m>\d\d)(?P<d>\d\d)/(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)\.mp4'",
        "porch/20241103/013000.mp4",
        "in-place",
        "porch",
        datetime(2024, 11, 3, 5, 30, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
@pytest.mark.parametrize(
    ("options", "relative", "how", "camera", "start"),
    PRESET_CASES,
    ids=["frigate", "zoneminder", "blueiris", "blueiris-dst-gap", "synology", "custom-dst-fold"],
)
async def test_each_preset_names_camera_and_utc_start(
    run_source: Sources,
    tmp_path: Path,
    poll: bool,
    options: str,
    relative: str,
    how: str,
    camera: str,
    start: datetime | None,
):
    extra = f"    since: 1h\n    {options}\n" + ("    poll: 0.2s\n" if poll else "")
    db = await run_source(extra)
    data = await recording(tmp_path)
    path = await asyncio.to_thread(_write_like_nvr, tmp_path / "nvr", relative, data, how)
    [clip] = await settled_count(db, 1)
    assert (clip.camera, clip.path, clip.size) == (camera, path, len(data))
    if start is not None:
        assert clip.start == start
    else:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        assert clip.start is not None
        assert abs((mtime - clip.start).total_seconds() - 2.0) < 0.2


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
async def test_writer_pausing_longer_than_settle_is_not_queued_early(
    run_source: Sources, tmp_path: Path, poll: bool
):
    db = await run_source("    since: 1h\n" + ("    poll: 0.2s\n" if poll else ""), settle="0.3s")
    data = await recording(tmp_path)
    target = tmp_path / "nvr" / "slow.mp4"
    half = len(data) // 2
    await asyncio.to_thread(_write_in_chunks, target, data[:half], False, 1024)
    end = time.monotonic() + 1.2  # four settle periods with the writer paused
    await eventually(lambda: time.monotonic() > end, what="the writer's pause")
    assert await clips(db) == []
    await asyncio.to_thread(_write_in_chunks, target, data[half:], True, 1024)
    [clip] = await settled_count(db, 1)
    assert clip.size == len(data)


class WatchLimit(SharedObserver):
    """The kernel's inotify watch limit (fs.inotify.max_user_watches), reached for one folder."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self._refused = refused

    def watch(self, handler: FileSystemEventHandler, path: str) -> ObservedWatch:
        if path == self._refused:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return super().watch(handler, path)


async def test_folder_cameras_share_one_observer_and_a_refused_watch_falls_back_to_polling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.ERROR, logger="edged.sources.folder")
    folders = {name: tmp_path / name for name in ("full", "fine", "also")}
    cameras = "".join(
        f"  - {{name: {name}, folder: {folder}, settle: 0.3s, since: 1h}}\n"
        for name, folder in folders.items()
    )
    config = parse_config(f"api: {{api_key: k}}\ncameras:\n{cameras}")
    for folder in folders.values():
        folder.mkdir()
    observer = WatchLimit(str(folders["full"]))
    db = AsyncLedger(await asyncio.to_thread(Ledger, tmp_path / "state"))
    sources = [
        FolderSource(db, camera, tick_s=0.05, observer=observer, fallback_poll_s=0.2)
        for camera in config.cameras
    ]
    tasks = [asyncio.create_task(source.run()) for source in sources]
    try:
        for source in sources:
            await asyncio.wait_for(source.ready.wait(), 20)
        assert observer.watches == 2  # the two others share one observer
        data = await recording(tmp_path)
        for name, folder in folders.items():
            await asyncio.to_thread((folder / f"{name}.mp4").write_bytes, data)
        queued = await settled_count(db, 3)
        assert sorted(clip.camera for clip in queued) == ["also", "fine", "full"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.aclose()
    assert observer.watches == 0
    [line] = [r.getMessage() for r in caplog.records if "cannot watch" in r.getMessage()]
    assert "camera=full" in line and "inotify watch limit reached" in line and "polling" in line


async def test_an_mp4_whose_last_box_extends_to_the_end_is_queued_once_settled(
    run_source: Sources, tmp_path: Path
):
    """A complete recording followed by a box of size 0 (ISO/IEC 14496-12: to the end of the
    file; here the zeros of bench/upload_rss.py's padded sample) is a finished recording once
    it has settled."""
    db = await run_source("    since: 1h\n", settle="0.5s")
    scratch = tmp_path / "scratch" / "padded.mp4"
    await asyncio.to_thread(make_padded_file, scratch, 300_000, seconds=1)
    await asyncio.to_thread(scratch.rename, tmp_path / "nvr" / "padded.mp4")
    [clip] = await settled_count(db, 1)
    assert clip.size == 300_000 and clip.duration_s == pytest.approx(1.0, abs=0.2)


async def test_a_folder_that_changes_all_the_time_still_gets_its_catch_up(
    run_source: Sources, tmp_path: Path
):
    """An NVR writes its next file without pause (here a temporary file grown every 0.1 s,
    ignored by the camera, while the source's tick is 0.5 s): a recording finished while
    edged was down is still queued, the settle checks do not wait for the folder to go
    quiet."""
    data = await recording(tmp_path)
    (tmp_path / "nvr" / "before.mp4").write_bytes(data)
    busy = asyncio.Event()

    async def nvr_writing() -> None:
        noise = tmp_path / "nvr" / "next.mp4.tmp"
        while not busy.is_set():
            with noise.open("ab") as handle:
                handle.write(b"\0" * 1024)
            await asyncio.sleep(0.1)  # the writer's pace, not synchronisation

    writer = asyncio.create_task(nvr_writing())
    try:
        # Its settle time has not passed when edged starts: the catch-up leaves it to the
        # settle checks.
        # The daemon's tick (0.5 s), longer than the writer's pauses.
        db = await run_source("    since: 1h\n", settle="2s", tick_s=0.5)
        [clip] = await settled_count(db, 1)
        assert clip.path.name == "before.mp4"
        assert not writer.done()  # the folder was still changing when it was queued
    finally:
        busy.set()
        await writer
