"""Promise: no clip is lost, even by a power cut; RTSP clips are `*.part`, fsynced, renamed.

Pulling the plug as far as a test can:

- a real `edged run` killed with SIGKILL after a finished clip was renamed into place but
  before the ledger recorded it (the ledger held locked by the test at that instant), with
  the next clip's `.part` half written: on start both are queued, uploaded once, and play
  on, frame after frame;
- a `.part` torn at random byte offsets, and with a zeroed tail (what delayed allocation
  leaves after a power cut): each is recovered to a playable clip or reported and deleted,
  never a crash, and more bytes never give less video;
- the ledger copied (database, then WAL) while a live edged writes to it: every copy opens,
  passes integrity_check and is consistent, and edged starts on it and finishes the work.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import av
import pytest

from edged.emulator import Emulator
from edged.ledger.connection import LEDGER_FILE
from edged.media.probe import probe_video
from edged.media.samples import make_clip
from edged.sources.rtsp_files import RECOVERING, final_of
from edged.sources.rtsp_recovery import recover_camera
from edged.sources.rtsp_segmenter import Segmenter
from edged.sources.rtsp_values import CameraStats, FinishedClip
from edged.sources.rtsp_writer import StreamPlan
from tests.support.edged import write_config
from tests.support.environment import free_port
from tests.support.ledger import rows
from tests.support.rtsp import (
    FPS,
    ServerFactory,
    camera_yaml,
    frame_indices,
    runs,
    video_seconds,
)


def edged_config(tmp_path: Path, api_url: str, cameras: str, *, state: Path | None = None) -> Path:
    """Clips are kept an hour after upload so the test can play them; results that never
    come (a callback to a process that died) expire quickly and the clip is sent again."""
    config = write_config(tmp_path, api_url, extra="cameras:\n" + cameras)
    text = config.read_text().replace("storage:\n", "storage:\n  keep_uploaded: 1h\n")
    text = text.replace("callback:\n", "callback:\n  result_timeout: 3s\n")
    if state is not None:
        text = text.replace(f"dir: {tmp_path / 'state'}", f"dir: {state}")
    config.write_text(text)
    return config


# ---- SIGKILL between the rename and the ledger ---------------------------------------------


class WriteLock:
    """Holds the ledger's write lock (BEGIN IMMEDIATE): edged's next transition waits for it
    (busy_timeout 10 s), so the test knows the instant between a rename and its ledger row."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def paths(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT path FROM clips")}

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


async def test_kill_9_after_the_rename_before_the_ledger_loses_no_clip(
    emulator: Emulator, rtsp_server: ServerFactory, edged_run, tmp_path: Path
):
    server = await rtsp_server()
    config = edged_config(tmp_path, emulator.url, camera_yaml("gate", server.url))
    clips_dir = tmp_path / "state" / "clips" / "gate"
    first = await edged_run(config)

    async def seconds_in_part(wanted: float) -> bool:
        parts = list(clips_dir.rglob("*.mp4.part"))
        return bool(parts) and await asyncio.to_thread(video_seconds, parts[0]) >= wanted

    # Late in the first clip (5 s), so the cut comes well within edged's busy_timeout.
    await first.until(lambda: seconds_in_part(3.5), "3.5 s of the first clip")
    lock = await asyncio.to_thread(WriteLock, tmp_path / "state" / LEDGER_FILE)
    try:
        await first.until(lambda: any(clips_dir.rglob("*.mp4")), "the renamed clip")
        (renamed,) = list(clips_dir.rglob("*.mp4"))
        await first.until(lambda: seconds_in_part(1.0), "1 s of the next clip")
        code = await first.stop(signal.SIGKILL)
        assert code == -signal.SIGKILL
        assert str(renamed) not in await asyncio.to_thread(lock.paths), "not in the ledger yet"
    finally:
        await asyncio.to_thread(lock.release)
    (part,) = list(clips_dir.rglob("*.mp4.part"))
    part_seconds = await asyncio.to_thread(video_seconds, part)
    assert part_seconds >= 1.0

    second = await edged_run(config)
    db = tmp_path / "state" / LEDGER_FILE
    sql = "SELECT id, path, state FROM clips WHERE path IN (?, ?) ORDER BY id"

    async def both_done() -> bool:
        found = await asyncio.to_thread(rows, db, sql, str(renamed), str(final_of(part)))
        return len(found) == 2 and all(row["state"] == "done" for row in found)

    await second.until(both_done, "both clips done after the restart")
    code = await second.stop(signal.SIGTERM)
    err = second.log()
    assert code == 0, err
    assert f"recovered camera=gate file={renamed.name} (finished, not yet queued)" in err
    assert f"file={final_of(part).name} (cut short by a crash)" in err
    assert not part.exists()

    before, after = [await asyncio.to_thread(frame_indices, p) for p in (renamed, final_of(part))]
    assert list(runs(before)) == [] and list(runs(after)) == []
    assert (before[-1] + 1) % 256 == after[0], "the recovered clip starts where the other ended"
    assert len(after) >= round(part_seconds * FPS) - 1  # all that was on disk, bar a frame
    for row in await asyncio.to_thread(rows, db, sql, str(renamed), str(final_of(part))):
        marker = f"/callbacks/{row['id']}/"
        assert len([r for r in emulator.received if marker in str(r.req.get("callback"))]) == 1


# ---- a torn .part -----------------------------------------------------------------------------


def write_part(stream: Path, camera_dir: Path, seconds: float) -> tuple[Path, bytes]:
    """Blocking: `seconds` of the test stream through edged's own segmenter and writer; returns
    the `.part` and its bytes as a kill would leave them (the clip still open)."""
    finished: list[FinishedClip] = []
    with av.open(str(stream)) as source:
        video, audio = source.streams.video[0], source.streams.audio[0]
        plan = StreamPlan.choose(video, audio, "copy")
        segmenter = Segmenter("cam", camera_dir, plan, 60, finished.append, CameraStats())
        for packet in source.demux(video, audio):
            if packet.size:
                segmenter.feed(packet)
            if packet.stream is video and packet.pts and packet.pts * video.time_base > seconds:
                break
        (part,) = list(camera_dir.rglob("*.part"))
        data = part.read_bytes()
        segmenter.finish()
    return part, data


def recover_torn(storage: Path, data: bytes, size: int) -> list[int] | None:
    """Blocking: a fresh storage with `data` as a clip's `.part`, padded with zeros to `size`;
    recovered as edged does on start. The frame indices of the clip, or None (no clip)."""
    camera_dir = storage / "clips" / "cam"
    part = camera_dir / "2025-03-01" / "120000.mp4.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data.ljust(size, b"\0"))
    found = recover_camera(storage, camera_dir, ())
    assert not part.exists(), "a part is recovered or deleted, never left"
    if not found:
        return None
    (clip,) = found
    info = probe_video(clip.path, max_bytes=1 << 40, max_duration_s=1e6)  # the uploader's check
    assert info.codec == "h264" and info.duration_s > 0
    return frame_indices(clip.path)


def box_starts(data: bytes) -> list[int]:
    """Where each top-level MP4 box (ftyp, moov, then moof + mdat per fragment) starts."""
    starts, at = [], 0
    while at + 8 <= len(data):
        starts.append(at)
        size = int.from_bytes(data[at : at + 4], "big")
        if size < 8:
            break
        at += size
    return starts


async def test_a_part_torn_anywhere_is_recovered_or_reported_never_a_crash(
    stream_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    _, data = await asyncio.to_thread(write_part, stream_file, tmp_path / "rec" / "cam", 4.0)
    rng = random.Random(8)
    # Around every box (inside its header, inside its body) and at random.
    boxes = [start + delta for start in box_starts(data) for delta in (0, 20)]
    offsets = sorted({*boxes, len(data), *(rng.randrange(len(data)) for _ in range(8))})
    recovered: list[int] = []
    with caplog.at_level(logging.INFO, logger="edged.sources.rtsp_recovery"):
        for number, offset in enumerate(offsets):
            for zeroed in (False, True):
                size = len(data) if zeroed else offset
                storage = tmp_path / f"torn-{number}-{int(zeroed)}"
                frames = await asyncio.to_thread(recover_torn, storage, data[:offset], size)
                if frames is None:
                    assert f"torn-{number}-{int(zeroed)}/" in caplog.text, "reported"
                    recovered.append(0)
                    continue
                assert frames[0] == 0 and list(runs(frames)) == [], (offset, zeroed)
                recovered.append(len(frames))
    # More bytes never give less video, with or without the zeroed tail.
    assert recovered[0::2] == sorted(recovered[0::2])
    assert recovered[1::2] == sorted(recovered[1::2])
    assert recovered[0] == 0 and recovered[-1] >= 3 * FPS  # all of it, bar the open fragment


async def test_edged_starts_on_torn_parts_and_a_stale_recovery(
    emulator: Emulator, stream_file: Path, edged_run, tmp_path: Path
):
    """The same through a real `edged run`: torn parts of a camera that is offline, and the
    scratch file of a recovery a crash interrupted."""
    day = tmp_path / "state" / "clips" / "gate" / "2025-03-01"
    _, data = await asyncio.to_thread(write_part, stream_file, tmp_path / "rec" / "cam", 3.0)
    day.mkdir(parents=True)
    torn = {"100000": len(data), "100010": len(data) * 2 // 3, "100020": 300}
    for name, offset in torn.items():
        (day / f"{name}.mp4.part").write_bytes(data[:offset].ljust(len(data), b"\0"))
    stale = day / f"100000.mp4{RECOVERING}"
    stale.write_bytes(data[:1000])
    offline = f"rtsp://127.0.0.1:{free_port()}/cam"
    config = edged_config(tmp_path, emulator.url, camera_yaml("gate", offline))
    db = tmp_path / "state" / LEDGER_FILE
    run = await edged_run(config)

    async def recovered_done() -> bool:
        if not db.exists():
            return False
        try:
            found = await asyncio.to_thread(rows, db, "SELECT path, state FROM clips")
        except sqlite3.OperationalError:
            return False  # the file is there, edged is still creating its tables
        return {Path(r["path"]).name: r["state"] for r in found} == {
            "100000.mp4": "done",
            "100010.mp4": "done",
        }

    await run.until(recovered_done, "the two recoverable parts done")
    code = await run.stop(signal.SIGTERM)
    err = run.log()
    assert code == 0, err
    assert "100020.mp4.part held no complete frame: deleted" in err
    assert not list(day.glob("*.part")) and not stale.exists()
    for name in ("100000.mp4", "100010.mp4"):
        assert list(runs(await asyncio.to_thread(frame_indices, day / name))) == []


# ---- the ledger copied while edged writes ---------------------------------------------------


def copy_live(db: Path, target: Path) -> bool:
    """Blocking: copy the database, then its WAL, as a naive backup would. True when the copy
    is a point in time: no checkpoint restarted the WAL between the two copies (its salts are
    unchanged), which SQLite needs for the pair to match."""
    wal = db.with_name(db.name + "-wal")
    before = wal.read_bytes()[:32] if wal.exists() else b""
    target.mkdir(parents=True)
    shutil.copyfile(db, target / db.name)
    if wal.exists():
        shutil.copyfile(wal, target / wal.name)
    after = (target / wal.name).read_bytes()[:32] if (target / wal.name).exists() else b""
    return before[16:24] == after[16:24]


def check_copy(db: Path) -> tuple[int, int]:
    """Blocking: the copy opens, passes integrity_check and its tables agree with one another;
    returns (clips, done)."""
    assert [r[0] for r in rows(db, "PRAGMA integrity_check")] == ["ok"]
    assert rows(db, "PRAGMA foreign_key_check") == []
    if not rows(db, "SELECT 1 FROM sqlite_master WHERE name='clips'"):
        return 0, 0  # copied before edged made its tables: consistent, and empty
    queued = "SELECT COUNT(*) FROM clips c WHERE NOT EXISTS"
    queued += " (SELECT 1 FROM events e WHERE e.clip_id=c.id AND e.kind='queued')"
    assert rows(db, queued)[0][0] == 0, "every clip has its first event"
    unanswered = "SELECT COUNT(*) FROM clips c WHERE state IN ('analyzed', 'done')"
    unanswered += " AND NOT EXISTS (SELECT 1 FROM results r WHERE r.clip_id=c.id)"
    assert rows(db, unanswered)[0][0] == 0, "every analysed clip has its result"
    clips = rows(db, "SELECT COUNT(*), COALESCE(SUM(state='done'), 0) FROM clips")[0]
    return int(clips[0]), int(clips[1])


async def test_a_ledger_copied_mid_write_opens_intact_and_edged_runs_on_it(
    emulator: Emulator, edged_run, tmp_path: Path
):
    nvr = tmp_path / "nvr"
    count = 24
    for number in range(count):
        title = f"Alice {number}" if number % 4 == 0 else f"clip {number}"
        path = nvr / f"rec-{number:03d}.mp4"
        await asyncio.to_thread(make_clip, path, seconds=1.0, width=160, height=120, title=title)
    emulator.options.latency_s = 0.2  # uploads overlap the copies
    folder = f"  - name: yard\n    folder: {nvr}\n    pattern: '*.mp4'\n    since: 1d\n"
    persons = "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
    alerts = "alerts:\n  cooldown: 0s\n  snapshot_retention: 0s\n  sinks:\n    - type: log\n"
    cameras = folder + persons + alerts
    config = edged_config(tmp_path, emulator.url, cameras)
    db = tmp_path / "state" / LEDGER_FILE
    rng = random.Random(3)
    taken = 0
    best: tuple[int, Path] | None = None  # the copy with most clips in flight, kept
    live = await edged_run(config)
    # Copies at random moments (not synchronised with edged) until the live ledger is done;
    # each is checked, only the one taken in the thick of it is kept.
    deadline = time.monotonic() + 60
    done = 0
    while done < count and live.returncode is None and time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        if not db.exists():
            continue
        target = tmp_path / "copies" / str(taken)
        if not await asyncio.to_thread(copy_live, db, target):
            await asyncio.to_thread(shutil.rmtree, target)  # not a point in time: again
            continue
        taken += 1
        clips, done = await asyncio.to_thread(check_copy, target / LEDGER_FILE)
        in_flight = min(clips - done, done)
        if best is None or in_flight > best[0]:
            if best is not None:
                await asyncio.to_thread(shutil.rmtree, best[1])
            best = (in_flight, target)
        else:
            await asyncio.to_thread(shutil.rmtree, target)
    code = await live.stop(signal.SIGTERM)
    err = live.log()
    assert code == 0, err
    assert done == count, f"{done}/{count} clips done in the last of {taken} copies"

    # edged starts on the copy taken in the thick of it and finishes every clip.
    assert best is not None and best[0] > 0, "a copy was taken while clips were in flight"
    target = best[1]
    copied = edged_config(tmp_path / "copies", emulator.url, cameras, state=target)
    again = await edged_run(copied)

    async def all_done() -> bool:
        found = await asyncio.to_thread(rows, target / LEDGER_FILE, "SELECT state FROM clips")
        return len(found) == count and all(row["state"] == "done" for row in found)

    await again.until(all_done, "every clip done on the copy", timeout_s=60)
    code = await again.stop(signal.SIGTERM)
    err = again.log()
    assert code == 0, err
    assert await asyncio.to_thread(check_copy, target / LEDGER_FILE) == (count, count)
