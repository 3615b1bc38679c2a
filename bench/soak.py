"""Crash soak: a real `edged run`, killed with SIGKILL at random moments K times and restarted.

    python bench/soak.py [--kills 20] [--seed 1] [--up 0.5,9] [--keep DIR] [--activity-every S]

edged runs against the emulator (in this process, over HTTP) with three cameras: a folder
that a writer fills the way an NVR does (a clip every ~0.7 s, written in chunks under a
temporary name, then renamed; every third one shows Alice), an RTSP camera served by
GStreamer's rtsp-server (tests/support/rtsp_server.py), and a folder camera with
`upload: activity` (events on, the default rolls, `max_event: 1m`) fed the same way with
4 s recordings of a scripted scene, one every ~0.6 s (tests/support/event_footage.py,
encoded once; at least one whole cycle of the script): a walk over three recordings, one
inside a recording alone, a minute of walkers (cut at max_event), and recordings where
nothing moves. Alerts go to a webhook receiver here. Each run lives for a random time, then
gets SIGKILL; every second run is killed instead a random moment after it first holds a
clip for an event, so kills land mid-event. After every kill the ledger (copied with its
WAL, so the next start meets the crash as it was) must pass `integrity_check`. After the
last kill edged runs until every clip is settled, then stops with SIGTERM.

Checked at the end (DESIGN.md, "Promises"): every clip finished by a camera is `done`, or,
of the activity camera, `merged` into an event clip that is `done`, or `skipped_idle` where
the script has no walk in it or within its rolls (tests/support/event_audit.py: also that no
clip is in two event clips or uploaded besides its event clip, that each event clip holds
what its members held, and that `.events` keeps no file the ledger does not know and no
`.part`); every accepted upload beyond the first of a clip was one the ledger never recorded
(the window between the API accepting a clip and the ledger storing its task id), and no
more of those than kills x upload workers; each alert id reached the receiver, and a repeat
only across a kill; the ledger passes `integrity_check`; no `.part` is left, every one a
kill left behind became a clip (or was deleted as holding no frame). Prints the figures,
among them the kills that found clips held for an event, a join under way, or an event
clip's file not yet in the ledger, and the events whose footage went in two uploads.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
from edged.sources.event_maker import events_root
from edged.sources.rtsp_files import RECOVERING, final_of
from tests.support.environment import free_port
from tests.support.event_audit import EventAudit, Written, audit_events
from tests.support.event_footage import ClipSet, copy_like_nvr, write_like_nvr
from tests.support.ledger import rows
from tests.support.rtsp_server import RtspServer, make_stream_file

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2  # api.max_concurrent_uploads in the soak's config
#: A `.part` past its header: a keyframe of the test stream (160x120) or more is in it.
PART_WITH_FOOTAGE = 4 * 1024
SETTLED = (
    *("done", "failed", "dropped", "skipped_budget", "skipped_schedule"),
    *("skipped_idle", "merged"),  # the activity camera's
)
ACTIVITY_CAMERA = "porch"  # the folder camera with upload: activity
MAX_EVENT_S = 60  # its max_event
#: The activity camera's first recording began this long before the soak (its mtimes are
#: the ends of its recordings, so edged takes the script's times from them).
RECORDED_BEFORE_S = 7200


@dataclass(frozen=True)
class SoakSettings:
    kills: int = 20
    seed: int = 1
    min_up_s: float = 0.5  # a run lives between these (from its spawn: some die starting up)
    max_up_s: float = 9.0
    write_every_s: float = 0.7
    # The activity camera's writer, between recordings.
    activity_every_s: float = 0.6
    aim_every: int = 2  # every such run is killed mid-event (0: none)
    aim_delay_s: float = 1.0  # that long at most after the run first holds a clip
    aim_limit_s: float = 15.0  # an aimed run lives at most this long waiting for a held clip
    drain_timeout_s: float = 180.0


@dataclass
class SoakReport:
    kills: int = 0
    crashes: list[str] = field(default_factory=list)  # runs that ended without our signal
    killed_mid_upload: int = 0
    killed_with_part: int = 0
    killed_mid_event: int = 0  # clips held for an event in the ledger the kill left
    killed_mid_join: int = 0  # an event clip's .part on disk
    killed_before_merge: int = 0  # an event clip renamed into place, not yet in the ledger
    folder_written: int = 0
    events: EventAudit = field(default_factory=EventAudit)
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
        found += [f"{ACTIVITY_CAMERA}: {item}" for item in self.events.problems]
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
            *self._event_lines(),
        ]

    def _event_lines(self) -> list[str]:
        events = self.events
        sizes = sorted(events.event_sizes)
        spread = f"{sizes[0]}-{sizes[-1]}" if sizes else "-"
        edge = ", ".join(f"{n} {outcome}" for outcome, n in sorted(events.at_edge.items()))
        return [
            f"kills mid-event    {self.killed_mid_event} with clips held,"
            f" {self.killed_mid_join} mid-join, {self.killed_before_merge} between an event"
            " clip's file and its ledger row",
            f"activity camera    {events.written} recordings written: {events.merged} merged,"
            f" {events.done_alone} sent alone, {events.skipped_idle} skipped idle"
            f" (at a roll's edge: {edge or 'none'}); {len(events.idle_sent)} idle sent",
            f"event clips        {len(sizes)} ({spread} clips each),"
            f" {len(events.merged_twice)} clips in two, {len(events.orphans)} unknown files,"
            f" {len(events.parts)} .part left; {len(events.split)} joined in two",
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
    return write_like_nvr(data, folder / f"yard-{number:05d}.mp4")


async def _folder_writer(
    work: Path, every_s: float, written: list[Path], stop: asyncio.Event
) -> None:
    folder, scratch = work / "nvr", work / "scratch"
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    number = 0
    while not stop.is_set():
        number += 1
        written.append(await asyncio.to_thread(_write_like_nvr, scratch, folder, number))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def _activity_writer(
    clip_set: ClipSet, folder: Path, every_s: float, written: list[Written], stop: asyncio.Event
) -> None:
    """The activity camera's recordings in the script's order, cycle after cycle; once asked
    to stop, it goes on to the end of the first cycle, or to the next place the script allows
    after that (after an idle recording, so no event is left waiting for the clip after it)."""
    first_start = float(int(time.time()) - RECORDED_BEFORE_S)
    script = clip_set.script
    n = 0
    while not (stop.is_set() and n >= len(script) and script.may_stop_before(n)):
        path = await asyncio.to_thread(
            copy_like_nvr, clip_set, folder, ACTIVITY_CAMERA, n, first_start
        )
        written.append(Written(n, path))
        n += 1
        if not stop.is_set():
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
        f"  - name: {ACTIVITY_CAMERA}\n    folder: {work / ACTIVITY_CAMERA}\n"
        "    pattern: '*.mp4'\n    settle: 1s\n    since: 1d\n    upload: activity\n"
        f"    activity:\n      max_event: {MAX_EVENT_S}s\n"
        f"storage:\n  dir: {work / 'state'}\n  min_free: 0\n"
        "alerts:\n  cooldown: 0s\n  snapshot_retention: 0s\n  sinks:\n"
        f"    - type: webhook\n      url: {hook_url}\n      snapshot: none\n"
        f"metrics:\n  listen: 127.0.0.1:{metrics}\n"
    )
    path.chmod(0o600)  # it holds the API key
    return path


# ---- the ledger, read from outside ------------------------------------------------------


def _query(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    return rows(db, sql, *params)


def _has_tables(db: Path) -> bool:
    """Blocking: the ledger's schema is there. edged creates the file first and its tables in
    the transaction after, so a kill (or a look) in between finds a database without them."""
    sql = "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN ('clips', 'alerts')"
    return int(_query(db, sql)[0][0]) == 2


@dataclass(frozen=True)
class CrashState:
    """The ledger and the event clips as a kill left them."""

    verdict: str  # integrity_check
    uploading: int = 0
    held: int = 0  # clips in_event
    joining: bool = False  # an event clip's .part
    unrecorded: int = 0  # event clips renamed into place, not in the ledger


def _crash_state(state: Path, scratch: Path) -> CrashState:
    """Blocking: a copy of the ledger as the kill left it, database and WAL, looked at with
    the event clips on disk; the original stays untouched for the next start."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal"):
        if (state / name).exists():
            shutil.copy2(state / name, scratch / name)
    copy = scratch / "ledger.sqlite3"
    if not copy.exists():
        return CrashState("ok")  # killed before the ledger was created
    verdict = str(_query(copy, "PRAGMA integrity_check")[0][0])
    if not _has_tables(copy):
        return CrashState(verdict)  # killed before the schema: the next start creates it
    counts = {
        row[0]: int(row[1])
        for row in _query(copy, "SELECT state, COUNT(*) FROM clips GROUP BY state")
    }
    paths = {row[0] for row in _query(copy, "SELECT path FROM clips")}
    events = events_root(state)
    files = list(events.rglob("*.mp4")) if events.exists() else []
    return CrashState(
        verdict,
        uploading=counts.get("uploading", 0),
        held=counts.get("in_event", 0),
        joining=bool(_event_parts(state)),
        unrecorded=sum(str(path) not in paths for path in files),
    )


def _parts(state: Path) -> set[Path]:
    """The RTSP camera's `.part` clips under storage (not a recovery's scratch file, redone
    from its part, nor an event clip's, written again by its next join)."""
    events = events_root(state)
    return {
        p
        for p in (state / "clips").rglob("*.part")
        if not p.name.endswith(RECOVERING) and not p.is_relative_to(events)
    }


def _event_parts(state: Path) -> set[Path]:
    events = events_root(state)
    return set(events.rglob("*.part")) if events.exists() else set()


def _held(db: Path) -> set[int]:
    """Blocking: the ids of the clips held for an event."""
    if not db.exists() or not _has_tables(db):
        return set()
    return {int(row[0]) for row in _query(db, "SELECT id FROM clips WHERE state='in_event'")}


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


async def _live_until_held(
    process: asyncio.subprocess.Process,
    db: Path,
    before: set[int],
    seconds: float,
    delay_s: float,
) -> int | None:
    """SIGKILL `delay_s` after this run first holds a clip for an event (one not among
    `before`, held when it started; looked at every 0.1 s), or after `seconds` if it holds
    none before; as `_live_for`."""
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(_held, db) - before:
        left = deadline - time.monotonic()
        if left <= 0:
            return await _live_for(process, 0)
        with suppress(TimeoutError):
            return await asyncio.wait_for(process.wait(), min(0.1, left))
    return await _live_for(process, min(delay_s, max(deadline - time.monotonic(), 0)))


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
        # (An event clip is too, but its members stay held, an open state, until it is.)
        events = events_root(state)
        recorded = (p for p in (state / "clips").rglob("*.mp4") if not p.is_relative_to(events))
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
    work: Path,
    stream: Path,
    settings: SoakSettings,
    say: Callable[[str], None] = print,
    clip_set: ClipSet | None = None,
) -> SoakReport:
    """The whole soak in `work` (kept afterwards: logs, ledger, config); `stream` is an MP4
    made by tests.support.rtsp_server.make_stream_file; `clip_set` the activity camera's
    recordings (made in `work` if not given)."""
    rng = random.Random(settings.seed)
    aim_rng = random.Random(settings.seed + 1)  # its own draws: rng's uptimes stay as they were
    report = SoakReport()
    state, logs = work / "state", work / "logs"
    db = state / "ledger.sqlite3"
    for folder in (work / "nvr", work / ACTIVITY_CAMERA, logs):
        folder.mkdir(parents=True, exist_ok=True)
    if clip_set is None:
        clip_set = await asyncio.to_thread(ClipSet.make, work / "takes")
    kills: list[float] = []  # wall time of each SIGKILL
    written: list[Path] = []
    recorded: list[Written] = []  # by the activity camera
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
            writers = [
                group.create_task(
                    _folder_writer(work, settings.write_every_s, written, stop_writing)
                ),
                group.create_task(
                    _activity_writer(
                        clip_set,
                        work / ACTIVITY_CAMERA,
                        settings.activity_every_s,
                        recorded,
                        stop_writing,
                    )
                ),
            ]
            for run in range(settings.kills):
                held = await asyncio.to_thread(_held, db)
                process = await _spawn(config, logs / f"run-{run:03d}.log")
                # Both drawn for every run, so that a seed gives the same moments.
                up_s = rng.uniform(settings.min_up_s, settings.max_up_s)
                delay_s = aim_rng.uniform(0, settings.aim_delay_s)
                if settings.aim_every and run % settings.aim_every == settings.aim_every - 1:
                    limit_s = settings.aim_limit_s  # the longest it lives, to see a clip held
                    code = await _live_until_held(process, db, held, limit_s, delay_s)
                else:
                    code = await _live_for(process, up_s)
                if code is not None:
                    report.crashes.append(f"run {run} exited {code} (logs/run-{run:03d}.log)")
                    continue
                kills.append(time.time())
                report.kills += 1
                crash = await asyncio.to_thread(_crash_state, state, work / "copy")
                report.integrity.append(crash.verdict)
                report.killed_mid_upload += bool(crash.uploading)
                report.killed_mid_event += bool(crash.held)
                report.killed_mid_join += crash.joining
                report.killed_before_merge += bool(crash.unrecorded)
                parts = await asyncio.to_thread(_parts, state)
                report.killed_with_part += bool(parts)
                report.parts_left |= parts
                say(
                    f"kill {report.kills}: {crash.uploading} uploading, {len(parts)} .part,"
                    f" {crash.held} held for an event, {crash.verdict}"
                )
            process = await _spawn(config, logs / "final.log")
            stop_writing.set()
            for writer in writers:
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
            finished = written + [item.path for item in recorded]
            while not await _settled(db, finished, state):
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
            writes = Writes(written, recorded, clip_set)
            await asyncio.to_thread(_judge, report, emulator, receiver, db, writes, kills, logs)
    finally:
        await asyncio.to_thread(camera.kill)
    return report


@dataclass(frozen=True)
class Writes:
    """What the writers finished: the yard's files, the activity camera's recordings."""

    yard: list[Path]
    activity: list[Written]
    clip_set: ClipSet


def _judge(
    report: SoakReport,
    emulator: Emulator,
    receiver: AlertReceiver,
    db: Path,
    writes: Writes,
    kills: list[float],
    logs: Path,
) -> None:
    """Blocking: every check of the module's doc, from the ledger, emulator and receiver."""
    report.integrity.append(str(_query(db, "PRAGMA integrity_check")[0][0]))
    written = writes.yard
    report.folder_written = len(written)
    clips = {row["id"]: dict(row) for row in _query(db, "SELECT * FROM clips")}
    by_path = {row["path"]: row for row in clips.values()}
    for clip in clips.values():
        if clip["camera"] == ACTIVITY_CAMERA:
            continue  # judged below, with its event clips
        if clip["state"] == "done":
            report.done[clip["camera"]] += 1
        else:
            error = clip["last_error"] or ""
            report.lost.append(f"clip {clip['id']} {clip['path']}: {clip['state']} {error}")
    report.lost += [f"{p}: written, never queued" for p in written if str(p) not in by_path]
    events = events_root(db.parent)
    for path in (db.parent / "clips").rglob("*.mp4"):
        if str(path) not in by_path and not path.is_relative_to(events):
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
    report.events = audit_events(
        db,
        db.parent,
        ACTIVITY_CAMERA,
        writes.clip_set.script,
        writes.activity,
        accepted.keys(),
        max_event_s=MAX_EVENT_S,
    )

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
    parser.add_argument(
        "--activity-every",
        type=float,
        default=SoakSettings.activity_every_s,
        help="seconds between the activity camera's recordings",
    )
    args = parser.parse_args()
    low, high = (float(x) for x in args.up.split(","))
    settings = SoakSettings(
        kills=args.kills,
        seed=args.seed,
        min_up_s=low,
        max_up_s=high,
        activity_every_s=args.activity_every,
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="edged-soak-"))
    work.mkdir(parents=True, exist_ok=True)
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
