"""The activity gate end to end: the test day served over RTSP, recorded and sent by `edged run`.

    python bench/activity_live.py [--size 1080p|720p|360p] [--seconds 600] [--clip-seconds 10]
                                  [--substream 360p] [--keep DIR]

bench/activity_day.py examines the generated day (tests/support/activity_scene.py: four walks
and the distractors); this bench measures what `upload: activity` sends of it, and when. The day
(and 45 s more of the quiet yard, so that its last clips are cut and judged) is served in real
time by GStreamer's rtsp-server (tests/support/rtsp_server.py, video only) to a real `edged run`
with one RTSP camera, `upload: activity` with the zone and mask of activity_day.settings(), the
default rolls and event clips, uploading to the emulator (in this process, over HTTP). Once
every clip of the day is judged and whatever goes is uploaded (or the stream is about to end),
edged is stopped with SIGTERM and its ledger is read (read-only). It prints:

- how stream seconds are mapped to wall time: stream second 0 is the first clip's start less
  the second its first picture's burnt-in clock shows, checked against the clock of every
  clip whose file is still there, and how long after its end each clip entered the ledger;
- recorded seconds (the camera's own clips, not the event clips, within the day), uploaded
  seconds (what the emulator accepted: event clips and clips sent on their own) and their
  ratio, the event clips (start, length, members, when queued) and the clips sent alone;
- each walk: caught or not (uploaded footage overlapping it), the runs of the gate's active
  seconds that touch it (and how far past it they go), and the delay from its end to the
  upload that holds its end being queued (the clip's first `queued` event; an event clip's is
  its creation), as median, max and each; the false events (uploaded clips overlapping no
  walk, rolls included) and the active seconds away from the walks;
- the CPU of the edged process (user + system, /proc) per camera-second, from its first clip
  to the stop, with the box's cores and load before and after.

`--substream SIZE` serves the same day at that size too, as the camera's `activity.rtsp`
sub-stream, which edged then examines instead of the recorded stream's keyframes.

No figure is printed from a failed reference: when the RTSP server dies, edged exits before
the stop or reconnects (the file would start again, and the mapping with it), no clip comes,
or the first clip's clock cannot be read, it says so and exits 2. What the run finds wrong
with edged (a walk missed, an event still open at the stop, a queued clip not uploaded,
activity further than a second from every walk, a clip whose clock disagrees with its start)
is printed as a PROBLEM line, and the exit code is 1.

`--keep DIR` writes the video there (or reuses it: generating a 1080p day takes about a
minute) and keeps the run's config, edged.log and ledger in DIR/run; otherwise they go to a
temporary folder, kept only when the run failed or found a problem. `--seconds N` stops
after N seconds of the day for a quicker look (N outside every walk and its rolls). Run it
under `flock -o /work/cpu.lock` on the shared box: it is real time, about 11 minutes for the
day.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.activity_day import CLIP_S, DAY_S, MAXRATE_KBIT, SIGN, SIZES, WALKS, YARD, day, runs
from bench.common import EDGED, free_port
from edged.config.activity import ActivityConfig
from edged.emulator import Emulator, EmulatorOptions, run_emulator
from edged.ledger.connection import LEDGER_FILE
from tests.support.activity_scene import Scene, Walker, write_video
from tests.support.rtsp_server import RtspServer

ROOT = Path(__file__).resolve().parents[1]
CAMERA = "yard"
FPS = 5
KEYFRAME_S = 2.0
CRF = 28
#: Streamed after the day: the quiet yard goes on, so the day's last clip is cut at a keyframe
#: (not by the end of the stream) and the clip after an event can be judged and close it.
TAIL_S = 45.0
#: The stop comes this long before the stream would end at the latest (edged would reconnect
#: and the file start again).
BEFORE_END_S = 3.0
#: How long edged may take to start and record its first clip, beyond one clip's length.
FIRST_CLIP_S = 40.0
#: edged must exit this long after SIGTERM.
STOP_LIMIT_S = 60.0
POLL_S = 1.0
#: A clip's first picture shows (by its clock) the second it is mapped to, within this.
CLOCK_SLACK_S = 1.0
#: States in which a clip's way is decided: kept back, merged into an event clip, uploaded (or
#: given up). Any other (examining, in_event, queued, uploading, ...) is waited for.
SETTLED = frozenset(
    {"skipped_idle", "merged", "submitted", "analyzed", "done", "failed", "dropped"}
    | {"skipped_budget", "skipped_schedule"}
)
TICKS = os.sysconf("SC_CLK_TCK")


class ReferenceFailed(Exception):
    """What the figures rest on failed: none is printed."""


@dataclass
class Clip:
    """A clip row of the ledger, placed on the stream's time line (stream seconds)."""

    id: int
    path: Path
    state: str
    start_wall: float
    duration_s: float
    found_at: float
    queued_at: float | None  # its first `queued` event
    event: bool  # an event clip (made of members), not a recording of the camera
    members: list[int] = field(default_factory=list)
    begin: float = 0.0  # stream seconds, set once stream second 0 is known
    clock_s: int | None = None  # what its first picture's clock shows

    @property
    def end(self) -> float:
        return self.begin + self.duration_s

    def overlap(self, lo: float, hi: float) -> float:
        return max(0.0, min(self.end, hi) - max(self.begin, lo))


@dataclass
class Run:
    """What was measured while edged ran, for the report."""

    video: Path
    seconds: float
    clip_s: int
    work: Path
    pid: int = 0
    zero_wall: float = 0.0  # wall time of stream second 0
    first_clip: Clip | None = None
    first_clip_at: float = 0.0  # wall time it was seen
    cpu_at_first_clip: float = 0.0
    cpu_at_stop: float = 0.0
    stopped_at: float = 0.0
    stop_reason: str = ""
    exit_code: int | None = None
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    problems: list[str] = field(default_factory=list)
    substream: Path | None = None  # the day at a lower size, served as activity.rtsp
    substream_url: str | None = None


# ---- the parts around edged ------------------------------------------------------------------


def the_day(size: str, seconds: float) -> Scene:
    """activity_day's day up to `seconds`, then the quiet yard for TAIL_S."""
    width, height = SIZES[size]
    scene = day(width, height, FPS)
    walkers = tuple(w for w in scene.walkers if w.start_s < seconds)
    return dataclasses.replace(scene, seconds=seconds + TAIL_S, walkers=walkers)


def video_for(scene: Scene, size: str, seconds: float, folder: Path) -> tuple[Path, str]:
    """Blocking: the day's video in `folder`, reused when a complete one is there."""
    name = f"day-{size}-{FPS}fps-{seconds:g}s+{TAIL_S:g}s.mp4"
    path = folder / name
    if path.exists() and _frames_of(path) == round(scene.seconds * FPS):
        return path, f"reused {path}"
    start = time.monotonic()
    part = path.with_suffix(".part.mp4")
    write_video(scene, part, keyframe_s=KEYFRAME_S, crf=CRF, maxrate_kbit=MAXRATE_KBIT)
    part.rename(path)
    return path, f"generated in {time.monotonic() - start:.0f} s: {path}"


def _frames_of(path: Path) -> int:
    try:
        with av.open(str(path)) as container:
            return sum(1 for packet in container.demux(video=0) if packet.size)
    except (av.FFmpegError, OSError):
        return 0


def edged_config(
    work: Path, api_url: str, rtsp_url: str, clip_s: int, substream_url: str | None
) -> Path:
    """One RTSP camera gated by activity as activity_day.settings() has it; the files are kept
    a day after upload, so that each clip's clock can be read at the end."""
    port = free_port()
    settings = {
        "api": {"base_url": api_url, "api_key": "bench-key", "shutdown_grace": "5s"},
        "callback": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        "storage": {"dir": str(work / "state"), "min_free": 0, "keep_uploaded": "1d"},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "cameras": [
            {
                "name": CAMERA,
                "rtsp": rtsp_url,
                "clip_seconds": clip_s,
                "upload": "activity",
                "activity": {"zones": [YARD], "masks": [SIGN.polygon()]},
            }
        ],
    }
    if substream_url is not None:
        settings["cameras"][0]["activity"]["rtsp"] = substream_url  # type: ignore[index]
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    path.chmod(0o600)
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# ---- the ledger, read only ---------------------------------------------------------------------


def query(db: Path, sql: str, *params: object) -> list[dict[str, Any]]:
    """Blocking: rows of a read-only query; none while the ledger or its tables are not there."""
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as c:
            c.row_factory = sqlite3.Row
            return [dict(row) for row in c.execute(sql, params).fetchall()]
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []  # edged has made the file, not yet its tables
        raise


def read_clips(db: Path) -> list[Clip]:
    """Blocking: the camera's clips (those with a start and a length), recordings and event
    clips, with when each was first queued and an event clip's members."""
    rows = query(db, "SELECT * FROM clips WHERE camera=? ORDER BY id", CAMERA)
    queued: dict[int, float] = {}
    sql = "SELECT clip_id, MIN(at) AS at FROM events WHERE kind='queued' GROUP BY clip_id"
    for row in query(db, sql):
        queued[row["clip_id"]] = row["at"]
    members: dict[int, list[int]] = {}
    for row in query(db, "SELECT member_id, event_id FROM event_members ORDER BY member_id"):
        members.setdefault(row["event_id"], []).append(row["member_id"])
    clips = []
    for row in rows:
        if row["start_at"] is None or row["duration_s"] is None:
            continue
        path = Path(row["path"])
        clips.append(
            Clip(
                id=row["id"],
                path=path,
                state=row["state"],
                start_wall=datetime.fromisoformat(row["start_at"]).timestamp(),
                duration_s=float(row["duration_s"]),
                found_at=float(row["found_at"]),
                queued_at=queued.get(row["id"]),
                event=row["id"] in members or "/.events/" in str(path),
                members=members.get(row["id"], []),
            )
        )
    return clips


def read_activity(db: Path) -> dict[int, tuple[int, ...]]:
    """Blocking: each examined clip's active seconds, from its start."""
    rows = query(db, "SELECT clip_id, active FROM activity")
    return {row["clip_id"]: tuple(json.loads(row["active"])) for row in rows}


def first_clock(scene: Scene, path: Path) -> int | None:
    """Blocking: the second the clock shows in a clip's first picture; None if unreadable."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return scene.read_clock(frame.to_ndarray(format="gray").astype(np.uint8))
    except (av.FFmpegError, OSError):
        return None
    return None


# ---- the run -------------------------------------------------------------------------------


class Watch:
    """edged and the RTSP server while the day streams: each poll fails the reference if either
    has gone, or if edged lost the stream (its next connection would start the file again)."""

    def __init__(
        self, process: asyncio.subprocess.Process, server: RtspServer, log_path: Path
    ) -> None:
        self.process = process
        self.server = server
        self.log_path = log_path

    def check(self, what: str) -> None:
        if self.process.returncode is not None:
            raise ReferenceFailed(
                f"edged exited {self.process.returncode} before {what}:\n{self.tail()}"
            )
        if not self.server.running:
            raise ReferenceFailed(f"the RTSP server died before {what}")
        lost = self.lines("camera down") + self.lines("timestamps jumped")
        connects = self.lines("connected camera=")
        if lost or len(connects) > 1:
            shown = "\n".join([*connects, *lost])
            raise ReferenceFailed(
                f"edged lost the stream before {what} (a new connection starts the file"
                f" again, so stream seconds no longer map to wall time):\n{shown}"
            )

    def lines(self, needle: str) -> list[str]:
        with contextlib.suppress(OSError):
            return [line for line in self.log_path.read_text().splitlines() if needle in line]
        return []

    def tail(self, count: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-count:])
        return "(no log)"


async def record(run: Run, scene: Scene, emulator: Emulator, server: RtspServer) -> list[Clip]:
    """Start edged, wait for its first clip (stream second 0), let the day stream until every
    clip of it is settled (or the stream is about to end), stop edged; the ledger's clips."""
    config = edged_config(run.work, emulator.url, server.url, run.clip_s, run.substream_url)
    db = run.work / "state" / LEDGER_FILE
    log_path = run.work / "edged.log"
    run.load_before = os.getloadavg()
    prefix = ["setpriv", "--pdeathsig=SIGKILL", "--"] if shutil.which("setpriv") else []
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *prefix,
            *EDGED,
            "run",
            "-c",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
    run.pid = process.pid
    watch = Watch(process, server, log_path)
    try:
        first = await first_clip(run, watch, db)
        run.first_clip, run.first_clip_at = first, time.time()
        run.cpu_at_first_clip = cpu_seconds(process.pid)
        clock = await asyncio.to_thread(first_clock, scene, first.path)
        if clock is None:
            raise ReferenceFailed(f"the clock in clip {first.id}'s first picture cannot be read")
        first.clock_s = clock
        run.zero_wall = first.start_wall - clock
        await day_streamed(run, watch, db)
        run.cpu_at_stop = cpu_seconds(process.pid)
        run.stopped_at = time.time()
        process.send_signal(signal.SIGTERM)
        try:
            run.exit_code = await asyncio.wait_for(process.wait(), STOP_LIMIT_S)
        except TimeoutError:
            run.problems.append(f"edged had not exited {STOP_LIMIT_S:.0f} s after SIGTERM")
        if run.exit_code not in (0, None):
            run.problems.append(f"edged exited {run.exit_code} on SIGTERM:\n{watch.tail()}")
        run.load_after = os.getloadavg()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return await asyncio.to_thread(read_clips, db)


async def first_clip(run: Run, watch: Watch, db: Path) -> Clip:
    deadline = time.monotonic() + run.clip_s + FIRST_CLIP_S
    while time.monotonic() < deadline:
        watch.check("its first clip")
        recorded = [c for c in await asyncio.to_thread(read_clips, db) if not c.event]
        if recorded:
            return recorded[0]
        await asyncio.sleep(POLL_S / 5)
    raise ReferenceFailed(
        f"edged recorded no clip within {run.clip_s + FIRST_CLIP_S:.0f} s:\n{watch.tail()}"
    )


async def day_streamed(run: Run, watch: Watch, db: Path) -> None:
    """Until the day is recorded to its end and no clip of it is still judged, held or waiting
    to be sent; at the latest just before the stream ends."""
    deadline = run.zero_wall + run.seconds + TAIL_S - BEFORE_END_S
    said = time.time()
    while True:
        watch.check("the end of the day")
        clips = await asyncio.to_thread(read_clips, db)
        for clip in clips:
            clip.begin = clip.start_wall - run.zero_wall
        recorded = [c for c in clips if not c.event]
        ends = max((c.end for c in recorded), default=0.0)
        open_ = [c for c in clips if c.begin < run.seconds and c.state not in SETTLED]
        now = time.time()
        if ends >= run.seconds - 0.5 and not open_:
            run.stop_reason = "every clip of the day judged, and what goes uploaded"
            return
        if now >= deadline:
            held = ", ".join(f"clip {c.id} {c.state} ({c.begin:.0f}-{c.end:.0f} s)" for c in open_)
            run.stop_reason = "the stream was about to end"
            run.problems.append(
                f"at the stop (stream second {now - run.zero_wall:.0f}) the day was recorded"
                f" to second {ends:.1f} and still open: {held or 'nothing'}"
            )
            return
        if now - said >= 60:
            said = now
            sent = sum(1 for c in clips if c.queued_at is not None)
            print(
                f"  ... stream second {now - run.zero_wall:.0f}: {len(recorded)} clips recorded,"
                f" {sent} queued to go",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.sleep(POLL_S)


# ---- the report ------------------------------------------------------------------------------


def uploaded_ids(emulator: Emulator) -> dict[int, int]:
    """Clip id → how many uploads of it the emulator accepted (the id is in its callback)."""
    found: dict[int, int] = {}
    for request in emulator.received:
        callback = str(request.req.get("callback", ""))
        if request.status != 200 or request.error is not None or "/callbacks/" not in callback:
            continue
        head = callback.split("/callbacks/", 1)[1].split("/", 1)[0]
        if head.isdigit():
            found[int(head)] = found.get(int(head), 0) + 1
    return found


def span(lo: float, hi: float) -> str:
    return f"{lo:.1f}-{hi:.1f} s"


def queued_note(run: Run, clip: Clip) -> str:
    if clip.queued_at is None:
        return ", never queued"
    return f", queued at stream second {clip.queued_at - run.zero_wall:.1f}"


def walk_window(walk: Walker, rolls: ActivityConfig) -> tuple[float, float]:
    return walk.start_s - rolls.pre_roll, walk.end_s + rolls.post_roll


def near(walk: Walker, second: int) -> bool:
    """An active second that is the walk's: a keyframe's sample stands for the second after
    it too, and a walk may show a little before or after its scripted seconds."""
    return walk.start_s - 1 <= second <= walk.end_s + 1


def gate_seen(walk: Walker, active: list[int]) -> str:
    """The runs of active seconds that touch the walk, and how far they reach beyond it."""
    seen = [(a, b) for a, b in runs(tuple(active)) if any(near(walk, s) for s in range(a, b + 1))]
    if not seen:
        return "gate never active"
    parts = []
    for a, b in seen:
        beyond = [f"{walk.start_s - a:g} s before it"] if a < walk.start_s - 1 else []
        # The last active second stands for the second after it: b + 1 is where it ends.
        beyond += [f"{b + 1 - walk.end_s:g} s past its end"] if b > walk.end_s + 1 else []
        parts.append(f"{a}-{b} s" + (f" ({', '.join(beyond)})" if beyond else ""))
    return f"gate active {', '.join(parts)}"


def spread(values: Iterable[float]) -> str:
    values = list(values)
    if not values:
        return "none"
    return f"median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def report(run: Run, scene: Scene, clips: list[Clip], emulator: Emulator) -> None:
    db = run.work / "state" / LEDGER_FILE
    rolls = ActivityConfig()
    window = (0.0, run.seconds)
    walks = {name: w for name, w in WALKS.items() if w.end_s <= run.seconds}
    for clip in clips:
        clip.begin = clip.start_wall - run.zero_wall
        if clip.path.exists():
            clip.clock_s = first_clock(scene, clip.path)
    recorded = [c for c in clips if not c.event]
    by_id = {c.id: c for c in clips}
    accepted = uploaded_ids(emulator)
    sent = sorted((by_id[i] for i in accepted if i in by_id), key=lambda c: (c.begin, c.id))
    strangers = sorted(set(accepted) - set(by_id))
    if strangers:
        run.problems.append(f"the emulator accepted clips the ledger does not know: {strangers}")
    twice = {i: n for i, n in accepted.items() if n > 1}
    if twice:
        run.problems.append(f"clips uploaded more than once (clip: uploads): {twice}")
    # Every clip that was queued (and not merged into an event clip since) went to the emulator.
    unsent = [c for c in clips if c.queued_at is not None and c.state != "merged"]
    unsent = [c for c in unsent if c.id not in accepted and c.begin < run.seconds]
    if unsent:
        shown = ", ".join(f"clip {c.id} {c.state} ({span(c.begin, c.end)})" for c in unsent)
        run.problems.append(f"queued but never uploaded by the stop: {shown}")

    first = run.first_clip
    assert first is not None
    print(
        f"\nstream time: stream second 0 = wall"
        f" {datetime.fromtimestamp(run.zero_wall, UTC).isoformat(timespec='milliseconds')}:"
        f" the first clip (id {first.id}) starts"
        f" {datetime.fromtimestamp(first.start_wall, UTC).isoformat(timespec='milliseconds')}"
        f" (its start_at) and its first picture's clock shows second {first.clock_s}; a clip's"
        f" stream seconds are its start_at less that, plus its duration_s"
    )
    off = {c.id: c.clock_s - c.begin for c in clips if c.clock_s is not None}
    worst = max((abs(d) for d in off.values()), default=0.0)
    print(
        f"  checked by the clock in the first picture of {len(off)} of {len(clips)} clips:"
        f" largest difference {worst:.2f} s (clocks show whole seconds)"
    )
    bad = [
        f"clip {c.id} mapped to {c.begin:.2f} s, its clock shows {c.clock_s}"
        for c in clips
        if abs(off.get(c.id, 0.0)) > CLOCK_SLACK_S
    ]
    if bad:
        run.problems.append("clips whose clock disagrees with their start: " + "; ".join(bad))
    unreadable = [c.id for c in clips if c.clock_s is None]
    if unreadable:
        print(f"  clock not read (file gone or picture unreadable): clips {unreadable}")
    lateness = [c.found_at - (run.zero_wall + c.end) for c in recorded]
    print(
        f"  a recording entered the ledger after its end (mapped): {spread(lateness)}, min"
        f" {min(lateness):.1f} s"
    )

    rec_s = sum(c.overlap(*window) for c in recorded)
    all_rec_s = sum(c.duration_s for c in recorded)
    up_s = sum(c.overlap(*window) for c in sent)
    gaps = [
        f"{a.end:.1f}-{b.begin:.1f} s"
        for a, b in itertools.pairwise(recorded)
        if b.begin - a.end > 0.5
    ]
    in_day = [c for c in recorded if c.overlap(*window) > 0]
    lengths = [c.duration_s for c in in_day]
    print(
        f"\nrecorded: {len(in_day)} clips over the day's {run.seconds:g} s"
        f" ({min(lengths):.1f}-{max(lengths):.1f} s long), {rec_s:.1f} s of the day"
        f" ({all_rec_s:.1f} s in all, the quiet yard after it included); gaps:"
        f" {', '.join(gaps) or 'none'}"
    )
    events = [c for c in sent if c.event]
    alone = [c for c in sent if not c.event]
    print(
        f"uploaded (accepted by the emulator): {up_s:.1f} s of the day in {len(sent)} upload(s)"
        f" ({len(events)} event clips, {len(alone)} clips on their own)"
    )
    ratio = up_s / rec_s if rec_s else 0.0
    print(f"uploaded / recorded: {up_s:.1f} / {rec_s:.1f} = {100 * ratio:.1f} %")
    outside = sum(
        c.overlap(*window)
        - sum(c.overlap(*walk_window(w, rolls)) for w in walks.values())  # windows are apart
        for c in sent
    )
    inside = sum(w.duration_s + rolls.pre_roll + rolls.post_roll for w in walks.values())
    print(
        f"  of it outside every walk and its rolls ({rolls.pre_roll:g} s before,"
        f" {rolls.post_roll:g} s after): {outside:.1f} s (the walks with their rolls:"
        f" {inside:.0f} s = {100 * inside / run.seconds:.1f} % of the day)"
    )
    activity = read_activity(db)
    print("\nevent clips:")
    for clip in events:
        parts = ", ".join(
            f"{m} ({span(by_id[m].begin, by_id[m].end)})" if m in by_id else str(m)
            for m in clip.members
        )
        queued = queued_note(run, clip)
        print(f"  clip {clip.id}: {span(clip.begin, clip.end)} ({clip.duration_s:.1f} s){queued};")
        print(f"    members {parts}")
    if not events:
        print("  none")
    print("clips sent on their own:")
    for clip in alone:
        queued = queued_note(run, clip)
        print(f"  clip {clip.id}: {span(clip.begin, clip.end)} ({clip.duration_s:.1f} s){queued}")
    if not alone:
        print("  none")

    active = sorted(
        {
            round(by_id[i].begin) + s
            for i, seconds in activity.items()
            if i in by_id and not by_id[i].event
            for s in seconds
        }
    )
    active = [s for s in active if s < run.seconds]
    print(
        "\nwalks (stream seconds; the gate's active seconds within 1 s of a walk are its own,"
        " a run of them that goes on past that is shown whole):"
    )
    delays: list[float] = []
    caught = 0
    for name, walk in walks.items():
        over = [c for c in sent if c.overlap(walk.start_s, walk.end_s) > 0]
        gate = gate_seen(walk, active)
        if not over:
            print(f"  {name:38s} {span(walk.start_s, walk.end_s)}: MISSED ({gate})")
            run.problems.append(f"{name} ({span(walk.start_s, walk.end_s)}) was not uploaded")
            continue
        caught += 1
        covered = sum(c.overlap(walk.start_s, walk.end_s) for c in over)
        last = max(over, key=lambda c: (c.end, c.id))
        if last.queued_at is None:
            delay = "never queued"
        else:
            delays.append(last.queued_at - (run.zero_wall + walk.end_s))
            delay = f"queued {delays[-1]:.1f} s after its end"
        ids = ", ".join(str(c.id) for c in over)
        print(
            f"  {name:38s} {span(walk.start_s, walk.end_s)}: caught by clip {ids}, covered"
            f" {covered:.1f} of {walk.duration_s:g} s; {gate}; clip {last.id} {delay}"
        )
    windows = [walk_window(w, rolls) for w in walks.values()]
    false = [c for c in sent if not any(c.overlap(lo, hi) > 0 for lo, hi in windows)]
    false = [c for c in false if c.overlap(*window) > 0]
    print(
        f"  caught {caught} of {len(walks)}; false events (uploads overlapping no walk and its"
        f" rolls): {len(false)}"
        + "".join(f"\n    clip {c.id}: {span(c.begin, c.end)}" for c in false)
    )
    stray = [s for s in active if not any(near(w, s) for w in walks.values())]
    shown = ", ".join(f"{a}-{b}" for a, b in runs(tuple(stray))) or "none"
    print(f"  active seconds further than 1 s from every walk: {len(stray)} ({shown})")
    if stray:
        run.problems.append(f"the gate found activity where no walk was: {shown} s")
    print(
        f"\ndelay from a walk's end to the upload holding it queued: {spread(delays)}"
        f" (each: {', '.join(f'{d:.1f}' for d in delays) or '-'} s; clips of {run.clip_s} s,"
        f" post_roll {rolls.post_roll:g} s)"
    )

    busy_s = run.stopped_at - run.first_clip_at
    cpu_s = run.cpu_at_stop - run.cpu_at_first_clip
    print(
        f"\nCPU of edged (pid {run.pid}, user + system, /proc): {cpu_s:.1f} s over"
        f" {busy_s:.0f} s of one camera (its first clip to the stop) ="
        f" {100 * cpu_s / busy_s:.2f} % of a core per camera-second (recording, the gate,"
        f" event clips, uploads); {run.cpu_at_stop:.1f} s in all with its start"
    )
    print(
        f"box: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), load before"
        f" {' '.join(f'{x:.2f}' for x in run.load_before)}, after"
        f" {' '.join(f'{x:.2f}' for x in run.load_after)}"
    )
    print(f"stopped: {run.stop_reason}; edged exit code {run.exit_code}")


# ---- main ----------------------------------------------------------------------------------


def check_seconds(seconds: float, clip_s: int) -> None:
    if not 3 * clip_s <= seconds <= DAY_S:
        raise SystemExit(f"--seconds must be between {3 * clip_s} and {DAY_S}")
    rolls = ActivityConfig()
    for name, walk in WALKS.items():
        lo, hi = walk_window(walk, rolls)
        if lo < seconds < hi:
            raise SystemExit(f"--seconds {seconds:g} cuts {name} ({lo:g}-{hi:g} s with its rolls)")


async def bench(run: Run, scene: Scene) -> list[Clip]:
    server = RtspServer(run.video, free_port(), audio="none")
    sub = None if run.substream is None else RtspServer(run.substream, free_port(), audio="none")
    await asyncio.to_thread(server.start)
    try:
        if sub is not None:
            await asyncio.to_thread(sub.start)
            run.substream_url = sub.url
        async with run_emulator(EmulatorOptions(callback_delay_s=0.2)) as emulator:
            clips = await record(run, scene, emulator, server)
            if not server.running:
                raise ReferenceFailed("the RTSP server died before the stop")
            if sub is not None and not sub.running:
                raise ReferenceFailed("the sub-stream's RTSP server died before the stop")
            await asyncio.to_thread(report, run, scene, clips, emulator)
            return clips
    finally:
        await asyncio.to_thread(server.kill)
        if sub is not None:
            await asyncio.to_thread(sub.kill)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p")
    parser.add_argument("--seconds", type=float, default=float(DAY_S), help="of the day")
    parser.add_argument("--clip-seconds", type=int, default=CLIP_S)
    parser.add_argument("--keep", type=Path, help="the video (reused) and the run's files here")
    parser.add_argument("--substream", choices=sorted(SIZES), help="served as activity.rtsp")
    args = parser.parse_args()
    check_seconds(args.seconds, args.clip_seconds)
    scene = the_day(args.size, args.seconds)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="activity-live-"))
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    video, note = video_for(scene, args.size, args.seconds, folder)
    print(
        f"live activity bench: {args.seconds:g} s of the test day ({args.size}, {FPS} fps, a"
        f" keyframe every {KEYFRAME_S:g} s, H.264 crf {CRF} capped at {MAXRATE_KBIT} kbit/s,"
        f" no audio) and {TAIL_S:g} s of the quiet yard after it, served in real time by"
        f" GStreamer's rtsp-server to `edged run`: one RTSP camera, clip_seconds"
        f" {args.clip_seconds}, upload: activity (the yard zone, the sign masked, default rolls,"
        f" event clips), uploads to the emulator"
    )
    print(f"video: {video.stat().st_size / 1e6:.1f} MB, {note}")
    run = Run(video, args.seconds, args.clip_seconds, work)
    if args.substream is not None:
        sub_scene = the_day(args.substream, args.seconds)
        run.substream, sub_note = video_for(sub_scene, args.substream, args.seconds, folder)
        print(f"activity sub-stream: the same day at {args.substream}, {sub_note}")
    clean = False  # the run's files go only after a run with figures and no problem
    try:
        asyncio.run(bench(run, scene))
        clean = not run.problems
    except ReferenceFailed as error:
        print(f"\nFAILED, no figures: {error}")
        return 2
    finally:
        removed = args.keep is None and clean
        print(f"run files: {work}" + (" (removed)" if removed else ""))
        if removed:
            shutil.rmtree(folder, ignore_errors=True)
    for problem in run.problems:
        print(f"PROBLEM {problem}")
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
