"""Crash soak: a real `edged run`, killed with SIGKILL at random moments K times and restarted.

    python bench/soak.py [--kills 20] [--seed 1] [--up 0.5,9] [--keep DIR]

edged runs against the emulator (in this process, over HTTP) with two cameras: a folder
that a writer fills the way an NVR does (a clip every ~0.7 s, written in chunks under a
temporary name, then renamed; every third one shows Alice) and an RTSP camera served by
GStreamer's rtsp-server (tests/support/rtsp_server.py). Alerts go to a webhook receiver here.
Each run lives for a random time, then gets SIGKILL; after every kill the ledger (copied
with its WAL, so the next start meets the crash as it was) must pass `integrity_check`.
After the last kill edged runs until every clip is settled, then stops with SIGTERM.

Checked at the end (DESIGN.md, "Promises"): every clip finished by a camera is `done`;
every accepted upload beyond the first of a clip was one the ledger never recorded (the
window between the API accepting a clip and the ledger storing its task id), and no more
of those than kills x upload workers; each alert id reached the receiver, and a repeat
only across a kill; the ledger passes `integrity_check`; no `.part` is left, every one a
kill left behind became a clip (or was deleted as holding no frame). Prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edged.aio import serving
from edged.alerts.model import alert_id_for
from edged.emulator import Emulator, EmulatorOptions, run_emulator
from edged.media.samples import make_clip
from edged.sources.rtsp_files import RECOVERING, final_of
from tests.support.environment import free_port
from tests.support.rtsp_server import RtspServer, make_stream_file

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2  # api.max_concurrent_uploads in the soak's config
#: A `.part` past its header: a keyframe of the test stream (160x120) or more is in it.
PART_WITH_FOOTAGE = 4 * 1024
SETTLED = ("done", "failed", "dropped", "skipped_budget", "skipped_schedule")


@dataclass(frozen=True)
class SoakSettings:
    kills: int = 20
    seed: int = 1
    min_up_s: float = 0.5  # a run lives between these (from its spawn: some die starting up)
    max_up_s: float = 9.0
    write_every_s: float = 0.7
    drain_timeout_s: float = 180.0


@dataclass
class SoakReport:
    kills: int = 0
    crashes: list[str] = field(default_factory=list)  # runs that ended without our signal
    killed_mid_upload: int = 0
    killed_with_part: int = 0
    folder_written: int = 0
    done: Counter[str] = field(default_factory=Counter)  # camera → clips done
    lost: list[str] = field(default_factory=list)
    uploads: int = 0  # accepted by the API
    duplicate_uploads: int = 0
    unrecorded_uploads: int = 0  # accepted, task id never in the ledger (the crash window)
    outside_window: list[str] = field(default_factory=list)
    alerts_expected: int = 0
    alerts_delivered: int = 0
    duplicate_alerts: int = 0
    unexplained_alerts: list[str] = field(default_factory=list)
    parts_left: set[Path] = field(default_factory=set)
    parts_unrecovered: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        found = [f"lost: {item}" for item in self.lost]
        found += [f"crash: {item}" for item in self.crashes]
        found += [f"duplicate upload outside the window: {i}" for i in self.outside_window]
        if self.unrecorded_uploads > self.kills * WORKERS:
            found.append(f"{self.unrecorded_uploads} unrecorded uploads for {self.kills} kills")
        found += [f"duplicate alert not across a kill: {i}" for i in self.unexplained_alerts]
        if self.alerts_delivered < self.alerts_expected:
            found.append(f"alerts delivered {self.alerts_delivered}/{self.alerts_expected}")
        found += [f".part not recovered: {item}" for item in self.parts_unrecovered]
        found += [f"integrity_check: {r}" for r in self.integrity if r != "ok"]
        return found

    def lines(self) -> list[str]:
        done = sum(self.done.values())
        cameras = ", ".join(f"{n} {camera}" for camera, n in sorted(self.done.items()))
        bad = [r for r in self.integrity if r != "ok"]
        return [
            f"faults injected    {self.kills} SIGKILL ({self.killed_mid_upload} mid-upload,"
            f" {self.killed_with_part} with an RTSP .part open) in {self.seconds:.0f}s",
            f"clips finished     {done} done ({cameras}); folder files written"
            f" {self.folder_written}",
            f"clips lost         {len(self.lost)}",
            f"duplicate uploads  {self.duplicate_uploads} of {self.uploads} accepted"
            f" ({self.unrecorded_uploads} accepted but unrecorded: the crash window;"
            f" {len(self.outside_window)} outside it)",
            f"duplicate alerts   {self.duplicate_alerts} ({self.alerts_delivered} of"
            f" {self.alerts_expected} alert ids delivered;"
            f" {len(self.unexplained_alerts)} repeats not across a kill)",
            f"crashes            {len(self.crashes)}",
            f"integrity          {'ok' if not bad else 'FAILED'} ({len(self.integrity)} checks)",
            f".part after kills  {len(self.parts_left)},"
            f" {len(self.parts_left) - len(self.parts_unrecovered)} recovered",
        ]


# ---- the parts around edged ----------------------------------------------------------------


class AlertReceiver:
    """A webhook endpoint on 127.0.0.1:0 recording (alert id, wall time) of every POST."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, float]] = []
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.hits.append((request.headers["webhook-id"], time.time()))
        return web.json_response({"ok": True})

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[AlertReceiver]:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        async with serving(app, "127.0.0.1", 0, shutdown_timeout_s=5.0) as runner:
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
            yield self


def _write_like_nvr(scratch: Path, folder: Path, number: int) -> Path:
    """Blocking: a fresh clip, written in chunks under a temporary name, then renamed."""
    title = f"Alice at the gate {number}" if number % 3 == 0 else f"yard {number}"
    made = make_clip(scratch / f"{number}.mp4", seconds=1.0, width=160, height=120, title=title)
    data = made.read_bytes()
    made.unlink()
    final = folder / f"yard-{number:05d}.mp4"
    temp = final.with_name(final.name + ".tmp")
    with temp.open("wb") as handle:
        for start in range(0, len(data), 8192):
            handle.write(data[start : start + 8192])
            handle.flush()
            time.sleep(0.01)
    os.rename(temp, final)
    return final


async def _folder_writer(work: Path, every_s: float, written: list[Path], stop: asyncio.Event):
    folder, scratch = work / "nvr", work / "scratch"
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    number = 0
    while not stop.is_set():
        number += 1
        written.append(await asyncio.to_thread(_write_like_nvr, scratch, folder, number))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def _config(work: Path, api_url: str, hook_url: str, rtsp_url: str) -> Path:
    port, metrics = free_port(), free_port()
    path = work / "config.yaml"
    path.write_text(
        f"api:\n  base_url: {api_url}\n  api_key: soak-key\n"
        f"  max_concurrent_uploads: {WORKERS}\n  max_attempts: 50\n"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        "  result_timeout: 10m\n"
        "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
        "cameras:\n"
        f"  - name: yard\n    folder: {work / 'nvr'}\n    pattern: '*.mp4'\n"
        "    settle: 1s\n    since: 1d\n"
        f"  - name: gate\n    rtsp: {rtsp_url}\n    clip_seconds: 5\n    stall_timeout: 3s\n"
        f"storage:\n  dir: {work / 'state'}\n  min_free: 0\n"
        "alerts:\n  cooldown: 0s\n  snapshot_retention: 0s\n  sinks:\n"
        f"    - type: webhook\n      url: {hook_url}\n      snapshot: none\n"
        f"metrics:\n  listen: 127.0.0.1:{metrics}\n"
    )
    path.chmod(0o600)  # it holds the API key
    return path


# ---- the ledger, read from outside ------------------------------------------------------


def _query(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _has_tables(db: Path) -> bool:
    """Blocking: the ledger's schema is there. edged creates the file first and its tables in
    the transaction after, so a kill (or a look) in between finds a database without them."""
    sql = "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN ('clips', 'alerts')"
    return int(_query(db, sql)[0][0]) == 2


def _crash_state(state: Path, scratch: Path) -> tuple[str, int]:
    """Blocking: (integrity_check, clips uploading) of a copy of the ledger as the kill left
    it, database and WAL; the original stays untouched for the next start."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal"):
        if (state / name).exists():
            shutil.copy2(state / name, scratch / name)
    copy = scratch / "ledger.sqlite3"
    if not copy.exists():
        return "ok", 0  # killed before the ledger was created
    verdict = str(_query(copy, "PRAGMA integrity_check")[0][0])
    if not _has_tables(copy):
        return verdict, 0  # killed before the schema: the next start creates it
    uploading = _query(copy, "SELECT COUNT(*) FROM clips WHERE state='uploading'")[0][0]
    return verdict, int(uploading)


def _parts(state: Path) -> set[Path]:
    """The `.part` clips under storage (not a recovery's scratch file, redone from its part)."""
    return {p for p in (state / "clips").rglob("*.part") if not p.name.endswith(RECOVERING)}


def _recording(db: Path, state: Path, left_by_kills: set[Path]) -> bool:
    """Blocking: the running edged has footage of the RTSP camera: a clip of it in the ledger,
    and a `.part` of its own (not one a kill left) with at least a keyframe's worth of bytes."""
    if not db.exists() or not _has_tables(db):
        return False
    clips = _query(db, "SELECT COUNT(*) FROM clips WHERE camera='gate'")[0][0]
    return bool(clips) and any(
        _size(part) > PART_WITH_FOOTAGE for part in _parts(state) - left_by_kills
    )


def _size(path: Path) -> int:
    """0 for a file renamed or deleted since it was listed (a part closed, or recovered)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# ---- one run of edged ---------------------------------------------------------------------


async def _spawn(config: Path, log_path: Path) -> asyncio.subprocess.Process:
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        argv = [sys.executable, "-m", "edged.cli", "run", "-c", str(config)]
        return await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log, cwd=ROOT)


async def _live_for(process: asyncio.subprocess.Process, seconds: float) -> int | None:
    """SIGKILL after `seconds`; None when killed, else the exit code it ended with itself."""
    try:
        return await asyncio.wait_for(process.wait(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None


async def _settled(db: Path, written: list[Path], state: Path) -> bool:
    def check() -> bool:
        if not db.exists() or not _has_tables(db):
            return False  # not yet created, or created and its schema not yet committed
        paths = {row[0] for row in _query(db, "SELECT path FROM clips")}
        marks = ",".join("?" * len(SETTLED))
        sql = f"SELECT COUNT(*) FROM clips WHERE state NOT IN ({marks})"
        open_clips = _query(db, sql, *SETTLED)[0][0]
        pending = _query(db, "SELECT COUNT(*) FROM alerts WHERE state='pending'")[0][0]
        # A camera's clip is renamed from its .part before the ledger has it: every file
        # under storage must be in the ledger too, or a clip in that gap is taken for none.
        recorded = (state / "clips").rglob("*.mp4")
        return (
            all(str(p) in paths for p in written)
            and not open_clips
            and not pending
            and not _parts(state)
            and all(str(p) in paths for p in recorded)
        )

    return await asyncio.to_thread(check)


# ---- the soak -----------------------------------------------------------------------------


async def run_soak(
    work: Path, stream: Path, settings: SoakSettings, say: Callable[[str], None] = print
) -> SoakReport:
    """The whole soak in `work` (kept afterwards: logs, ledger, config); `stream` is an MP4
    made by tests.support.rtsp_server.make_stream_file."""
    rng = random.Random(settings.seed)
    report = SoakReport()
    state, logs = work / "state", work / "logs"
    db = state / "ledger.sqlite3"
    for folder in (work / "nvr", logs):
        folder.mkdir(parents=True, exist_ok=True)
    kills: list[float] = []  # wall time of each SIGKILL
    written: list[Path] = []
    options = EmulatorOptions(
        callback_delay_s=0.1, latency_s=0.2, callback_retries=60, callback_retry_delay_s=0.5
    )
    camera = RtspServer(stream, free_port())
    await asyncio.to_thread(camera.start)
    began = time.monotonic()
    try:
        async with (
            run_emulator(options, seed=settings.seed) as emulator,
            AlertReceiver().serve() as receiver,
            asyncio.TaskGroup() as group,
        ):
            config = _config(work, emulator.url, receiver.url, camera.url)
            stop_writing = asyncio.Event()
            writer = group.create_task(
                _folder_writer(work, settings.write_every_s, written, stop_writing)
            )
            for run in range(settings.kills):
                process = await _spawn(config, logs / f"run-{run:03d}.log")
                code = await _live_for(process, rng.uniform(settings.min_up_s, settings.max_up_s))
                if code is not None:
                    report.crashes.append(f"run {run} exited {code} (logs/run-{run:03d}.log)")
                    continue
                kills.append(time.time())
                report.kills += 1
                verdict, uploading = await asyncio.to_thread(_crash_state, state, work / "copy")
                report.integrity.append(verdict)
                report.killed_mid_upload += bool(uploading)
                parts = await asyncio.to_thread(_parts, state)
                report.killed_with_part += bool(parts)
                report.parts_left |= parts
                say(f"kill {report.kills}: {uploading} uploading, {len(parts)} .part, {verdict}")
            process = await _spawn(config, logs / "final.log")
            stop_writing.set()
            await writer
            # The final run records the camera before the camera is killed, however slow its
            # start: the kill then ends a clip in progress (closed and queued, short).
            deadline = time.monotonic() + settings.drain_timeout_s
            while not await asyncio.to_thread(_recording, db, state, report.parts_left):
                if process.returncode is not None or time.monotonic() > deadline:
                    report.crashes.append(f"final run never recorded ({process.returncode})")
                    break
                await asyncio.sleep(0.2)
            await asyncio.to_thread(camera.kill)
            deadline = time.monotonic() + settings.drain_timeout_s
            while not await _settled(db, written, state):
                if process.returncode is not None or time.monotonic() > deadline:
                    report.crashes.append(f"final run did not settle ({process.returncode})")
                    break
                await asyncio.sleep(0.5)
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(process.wait(), 60)
                if code != 0:
                    report.crashes.append(f"final run exited {code} on SIGTERM")
            report.seconds = time.monotonic() - began
            await asyncio.to_thread(_judge, report, emulator, receiver, db, written, kills, logs)
    finally:
        await asyncio.to_thread(camera.kill)
    return report


def _judge(
    report: SoakReport,
    emulator: Emulator,
    receiver: AlertReceiver,
    db: Path,
    written: list[Path],
    kills: list[float],
    logs: Path,
) -> None:
    """Blocking: every check of the module's doc, from the ledger, emulator and receiver."""
    report.integrity.append(str(_query(db, "PRAGMA integrity_check")[0][0]))
    report.folder_written = len(written)
    clips = {row["id"]: dict(row) for row in _query(db, "SELECT * FROM clips")}
    by_path = {row["path"]: row for row in clips.values()}
    for clip in clips.values():
        if clip["state"] == "done":
            report.done[clip["camera"]] += 1
        else:
            error = clip["last_error"] or ""
            report.lost.append(f"clip {clip['id']} {clip['path']}: {clip['state']} {error}")
    report.lost += [f"{p}: written, never queued" for p in written if str(p) not in by_path]
    for path in (db.parent / "clips").rglob("*.mp4"):
        if str(path) not in by_path:
            report.lost.append(f"{path}: on disk, not in the ledger")

    # Uploads: a repeat is allowed only for an upload the ledger never recorded.
    submitted = _query(db, "SELECT clip_id, detail FROM events WHERE kind='submitted'")
    recorded = {(row["clip_id"], row["detail"]) for row in submitted}
    accepted: dict[int, list[tuple[str | None, float]]] = {}
    for request in emulator.received:
        match = re.search(r"/callbacks/(\d+)/", str(request.req.get("callback", "")))
        if match and request.status == 200 and request.error is None:
            accepted.setdefault(int(match.group(1)), []).append(
                (request.task_id, request.received_at)
            )
    for clip_id, uploads in accepted.items():
        report.uploads += len(uploads)
        report.duplicate_uploads += len(uploads) - 1
        known = [task for task, _ in uploads if (clip_id, task) in recorded]
        report.unrecorded_uploads += len(uploads) - len(known)
        if len(known) > 1:
            report.outside_window.append(f"clip {clip_id}: {len(known)} recorded uploads")

    # Alerts: each expected id delivered; a repeat only by a run started after a kill.
    install_id = _query(db, "SELECT value FROM meta WHERE key='install_id'")[0][0]
    expected = {
        alert_id_for(install_id, clip["id"], "Alice")
        for clip in clips.values()
        if clip["camera"] == "yard" and int(Path(clip["path"]).stem.split("-")[1]) % 3 == 0
    }
    times: dict[str, list[float]] = {}
    for alert_id, at in receiver.hits:
        times.setdefault(alert_id, []).append(at)
    report.alerts_expected = len(expected)
    report.alerts_delivered = len(expected & times.keys())
    for alert_id, seen in times.items():
        report.duplicate_alerts += len(seen) - 1
        for first, again in itertools.pairwise(seen):
            if not any(first <= kill <= again for kill in kills):
                report.unexplained_alerts.append(alert_id)

    # Every .part a kill left became a clip in the ledger, or was deleted as frameless.
    log_text = "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log")))
    for part in sorted(report.parts_left):
        final = final_of(part)
        if part.exists() or (
            str(final) not in by_path and f"part file={part} held no complete frame" not in log_text
        ):
            report.parts_unrecovered.append(str(part))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--up", default="0.5,9", help="a run lives MIN,MAX seconds")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    low, high = (float(x) for x in args.up.split(","))
    settings = SoakSettings(kills=args.kills, seed=args.seed, min_up_s=low, max_up_s=high)
    work = args.keep or Path(tempfile.mkdtemp(prefix="edged-soak-"))
    stream = make_stream_file(work / "stream.mp4", seconds=600)
    report = asyncio.run(run_soak(work, stream, settings))
    print(f"crash soak: seed {settings.seed}, work dir {work}")
    for line in report.lines():
        print("  " + line)
    for problem in report.problems:
        print("  PROBLEM " + problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
