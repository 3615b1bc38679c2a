"""Promise: no clip is lost but by the storage quota (logged, counted), and a full disk does
not stop edged.

On a real small filesystem (a 48 MiB tmpfs mounted as storage.dir, ledger and clips; skipped
where the machine cannot mount one, failed there under CI=true), with an RTSP camera
recording at about 1 Mbit/s and the API refusing uploads (so clips pile up unsent):

- storage.min_free is measured on the filesystem itself: when it is reached the oldest unsent
  clips are dropped, each logged and counted in the ledger and /metrics, and the free space
  stays within about a clip of the limit;
- the disk filled by another writer faster than the quota can act: edged meets a real ENOSPC
  (its clip writer or its ledger, which gives up its reserve), keeps running, drops what the
  policy says, and records and queues clips again once space returns;
- no limit that could act (min_free 0) and the reserve already spent: the clip being written
  cannot even be finished and the ledger waits for space; once space returns that clip is
  finished and queued, and recording goes on.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from edged.emulator import Emulator
from edged.ledger.connection import LEDGER_FILE
from edged.ledger.reserve import RESERVE_BYTES, RESERVE_FILE
from edged.sources.rtsp_files import final_of
from tests.support.edged import write_config
from tests.support.edged_process import EdgedProcess
from tests.support.environment import free_port, missing
from tests.support.rtsp import camera_yaml, video_seconds
from tests.support.rtsp_server import RtspServer, make_stream_file

DISK = "48m"
DISK_BYTES = 48 * 1024 * 1024


@pytest.fixture(scope="module")
def busy_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1 Mbit/s (a 5 s clip is some 600 KB): the disk fills in a test's time."""
    folder = tmp_path_factory.mktemp("disk")
    return make_stream_file(folder / "busy.mp4", seconds=300, width=320, height=240, noise=0.25)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    point.mkdir()
    argv = ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(point)]
    mounted = subprocess.run(argv, capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        missing(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
async def camera(busy_stream: Path) -> AsyncIterator[RtspServer]:
    server = RtspServer(busy_stream, free_port())
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.kill)


def disk_config(tmp_path: Path, api_url: str, disk: Path, camera_url: str, storage: str) -> Path:
    config = write_config(tmp_path, api_url, extra="cameras:\n" + camera_yaml("lot", camera_url))
    text = config.read_text().replace(f"  dir: {tmp_path / 'state'}\n", f"  dir: {disk}\n{storage}")
    config.write_text(text)
    return config


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def clip_rows(disk: Path) -> list[sqlite3.Row]:
    """Blocking; a reader needs no free space (the WAL index is already mapped)."""
    db = disk / LEDGER_FILE
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM clips ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []  # the file is there, edged is still creating its tables
    finally:
        conn.close()


async def metric(config: Path, name: str, labels: str) -> float:
    text = await asyncio.to_thread(config.read_text)
    port = re.search(r"metrics:\n  listen: 127.0.0.1:(\d+)", text)
    assert port is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port[1]}/metrics") as response,
    ):
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def poll(
    check: Callable[[], bool | Awaitable[bool]],
    daemon: EdgedProcess,
    *,
    what: str,
    timeout_s: float = 60.0,
) -> None:
    """Until `check()` is true (a blocking check runs in a thread); fails if edged exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await asyncio.to_thread(check)
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        daemon.check_alive(what)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}\n{daemon.log()[-4000:]}")
        await asyncio.sleep(0.2)


def dropped_counted(config: Path, at_least: int) -> Callable[[], Awaitable[bool]]:
    """/metrics (refreshed from the ledger every few seconds) counts the dropped clips."""

    async def check() -> bool:
        return await metric(config, "edged_clips", 'state="dropped"') >= at_least

    return check


async def test_min_free_on_a_real_filesystem_drops_the_oldest_unsent_clips(
    emulator: Emulator, small_disk: Path, camera: RtspServer, edged_run, tmp_path: Path
):
    # 503 with Retry-After of an hour: each clip is tried once, then waits unsent; the quota
    # must drop (it leaves alone only a clip that an upload holds at that moment).
    emulator.options.error_rate, emulator.options.retry_after_s = 1.0, 3600
    budget = 1_200_000  # what edged may use on this disk, ledger included (two clips)
    min_free = DISK_BYTES - RESERVE_BYTES - budget
    config = disk_config(
        tmp_path, emulator.url, small_disk, camera.url, f"  min_free: {min_free}\n"
    )
    daemon = await edged_run(config)
    lowest = DISK_BYTES

    def dropped_two() -> bool:
        nonlocal lowest
        lowest = min(lowest, free_bytes(small_disk))
        return sum(row["state"] == "dropped" for row in clip_rows(small_disk)) >= 2

    try:
        await poll(dropped_two, daemon, what="two clips dropped by storage.min_free")
        await poll(lambda: dropped_counted(config, 2)(), daemon, what="drops in /metrics")
        first = (await asyncio.to_thread(clip_rows, small_disk))[:2]
        assert [row["state"] for row in first] == ["dropped", "dropped"], "the oldest first"
        # Dropped a while ago: their files are deleted (a drop cut off by the stop below
        # would have its file deleted at the next start).
        paths = [Path(row["path"]) for row in first]
        assert not any(await asyncio.to_thread(lambda: [p.exists() for p in paths]))
    finally:
        code = await daemon.stop(timeout_s=60)
    assert code == 0, daemon.log()[-4000:]
    rows = await asyncio.to_thread(clip_rows, small_disk)
    dropped = [row for row in rows if row["state"] == "dropped"]
    assert all("storage.min_free" in row["last_error"] for row in dropped)
    biggest = max(row["size"] for row in rows)
    assert lowest >= min_free - 2 * biggest, (lowest, min_free, biggest)
    text = daemon.log()
    for row in dropped:
        assert f"storage full: dropped camera=lot clip={row['id']} " in text


async def test_a_disk_filled_by_another_writer_meets_enospc_and_edged_carries_on(
    emulator: Emulator, small_disk: Path, camera: RtspServer, edged_run, tmp_path: Path
):
    emulator.options.error_rate = 1.0
    min_free = 8 * 1024 * 1024  # more than the ledger's reserve gives back
    storage = f"  min_free: {min_free}\n"
    config = disk_config(tmp_path, emulator.url, small_disk, camera.url, storage)
    daemon = await edged_run(config)
    filler = small_disk / "filler"
    reserve = small_disk / RESERVE_FILE
    try:
        await poll(lambda: len(clip_rows(small_disk)) >= 2, daemon, what="two unsent clips")
        assert reserve.exists()
        # Mid-clip: the part in progress has footage on disk when the disk fills.
        await poll(lambda: part_seconds(small_disk) >= 2.5, daemon, what="a part 2.5 s long")
        await asyncio.to_thread(fill, filler)  # faster than any quota round
        assert free_bytes(small_disk) < 64 * 1024

        def met_enospc_and_dropped() -> bool:
            # ENOSPC is met by whichever writes first: the clip writer ("No space left on
            # device"), or the ledger (SQLITE_FULL), which then releases its reserve.
            text = daemon.log()
            dropped = [row for row in clip_rows(small_disk) if row["state"] == "dropped"]
            return "reserve was released" in text and bool(dropped)

        await poll(met_enospc_and_dropped, daemon, what="ENOSPC met and the quota dropping")
        await poll(lambda: dropped_counted(config, 1)(), daemon, what="drops in /metrics")

        await asyncio.to_thread(filler.unlink)  # space returns
        freed_at = time.time()
        await poll(
            lambda: any(row["found_at"] > freed_at for row in clip_rows(small_disk)),
            daemon,
            what="a clip recorded and queued after space returned",
        )
        await poll(reserve.exists, daemon, what="the ledger's reserve back", timeout_s=30)
    finally:
        code = await daemon.stop(timeout_s=60)
    text = daemon.log()
    assert code == 0, text[-4000:]
    rows = await asyncio.to_thread(clip_rows, small_disk)
    for row in rows:
        if row["state"] == "dropped":
            assert "storage.min_free" in row["last_error"]
            assert f"storage full: dropped camera=lot clip={row['id']} " in text
    assert "Traceback" not in text
    db = sqlite3.connect(small_disk / LEDGER_FILE)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    leftovers = list((small_disk / "clips").rglob("*.part"))
    assert leftovers == [], text[-4000:]


async def test_a_clip_cut_by_enospc_with_no_reserve_left_is_kept_once_space_returns(
    emulator: Emulator, small_disk: Path, camera: RtspServer, edged_run, tmp_path: Path
):
    """No quota limit that could act (max_bytes null, min_free 0) and the ledger's reserve
    already spent by an earlier full disk: the clip being written cannot even be finished,
    and the ledger waits for space. Once space returns, that clip is finished and queued."""
    emulator.options.error_rate = 1.0
    config = disk_config(tmp_path, emulator.url, small_disk, camera.url, "  min_free: 0\n")
    daemon = await edged_run(config)
    filler = small_disk / "filler"
    try:
        await poll(lambda: part_seconds(small_disk) >= 2.5, daemon, what="a part 2.5 s long")
        (part,) = await asyncio.to_thread(lambda: list((small_disk / "clips").rglob("*.part")))
        await asyncio.to_thread((small_disk / RESERVE_FILE).unlink)
        await asyncio.to_thread(fill, filler)

        def stuck() -> bool:
            text = daemon.log()
            return f"could not finish camera=lot clip={part.name}" in text and (
                "ledger writes wait for space" in text
            )

        await poll(stuck, daemon, what="the clip unfinished and the ledger waiting")
        await asyncio.to_thread(filler.unlink)

        def kept() -> bool:
            rows = clip_rows(small_disk)
            return any(row["path"] == str(final_of(part)) for row in rows) and len(rows) >= 2

        await poll(kept, daemon, what="the cut clip and a new one queued")
    finally:
        code = await daemon.stop(timeout_s=60)
    text = daemon.log()
    assert code == 0, text[-4000:]
    (row,) = [
        r
        for r in await asyncio.to_thread(clip_rows, small_disk)
        if r["path"] == str(final_of(part))
    ]
    assert row["state"] in ("queued", "retry_wait") and row["duration_s"] >= 2.0, dict(row)
    assert "Traceback" not in text
    assert not list((small_disk / "clips").rglob("*.part")), "nothing left for a restart"


def part_seconds(disk: Path) -> float:
    """Blocking: how much video the part in progress holds."""
    parts = list((disk / "clips").rglob("*.mp4.part"))
    return video_seconds(parts[0]) if parts else 0.0


def fill(path: Path) -> None:
    """Blocking: write until the filesystem says ENOSPC, in ever smaller pieces."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 1 << 12):
            while True:
                try:
                    os.write(fd, b"\xa5" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
