"""Promise: no clip is lost, uploads at least once (a repeat only in the crash window), one
alert per (clip, person, sink) with a stable id, a ledger that survives `kill -9`; and for a
camera with `upload: activity`, every recording is sent itself, merged into an event clip
that is sent, or kept back only where nothing moved near it, a kill mid-event included.

A short run of the crash soak (bench/soak.py): a real `edged run` with a folder camera fed
like an NVR, an RTSP camera, and a folder camera with `upload: activity` fed like an NVR with
a scripted scene (tests/support/event_footage.py: events of several clips, a minute of
walkers longer than max_event, a walk in a clip alone, idle clips), killed with SIGKILL at
random moments (every second run a random moment after a clip is first held for an event)
and restarted; then every clip done, or merged into a done event clip, or skipped idle where
the script allows it (tests/support/event_audit.py: no clip in two event clips, no unknown
file or `.part` under `.events`), duplicates only where DESIGN.md allows them,
integrity_check ok after each kill and at the end, every `.part` a kill left turned into a
clip."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest

from bench.soak import CrashState, SoakSettings, _crash_state, _settled, run_soak
from edged.emulator import Emulator
from edged.ledger.connection import LEDGER_FILE
from tests.support.edged import write_config
from tests.support.event_footage import SCRIPT
from tests.support.ledger import rows

KILLS = 6  # every second one aimed mid-event


# The soak's own deadlines (recorded, settled, stopped: 60 s each) report before this does.
@pytest.mark.timeout(300)
async def test_kill_9_at_random_moments_loses_nothing(stream_file: Path, tmp_path: Path):
    settings = SoakSettings(kills=KILLS, seed=7, min_up_s=0.5, max_up_s=6.0, drain_timeout_s=120)
    report = await run_soak(tmp_path, stream_file, settings, say=lambda _line: None)
    print("\n".join(report.lines()))
    assert report.problems == [], "\n".join(report.problems + report.lines())
    assert report.kills == KILLS and len(report.integrity) == KILLS + 1
    # The soak exercised what it claims to: the yard's and the gate's clips and alerts went
    # through.
    assert report.done["yard"] == report.folder_written > 0
    assert report.done["gate"] > 0
    assert report.alerts_expected > 0
    # The activity camera's every kind of outcome (a whole cycle of its script is written),
    # and kills while clips were held for an event.
    events = report.events
    assert events.written >= len(SCRIPT)
    assert events.merged > 0 and events.event_sizes and events.skipped_idle > 0
    assert events.done_alone > 0  # the walk in a recording alone: an event of one clip
    assert report.killed_mid_event > 0


# ---- killed between the ledger's file and its tables ---------------------------------------


def ledger_without_tables(db: Path, *, empty: bool) -> None:
    """Blocking: the ledger as a kill can leave it on edged's first start. sqlite creates the
    file on connect (0 bytes) and writes its header with `journal_mode=WAL`, before the
    transaction that creates the tables."""
    db.parent.mkdir(parents=True, exist_ok=True)
    if empty:
        db.touch()
        return
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert db.stat().st_size > 0


async def test_the_soak_audit_reads_a_ledger_killed_before_its_schema(tmp_path: Path):
    state = tmp_path / "state"
    db = state / LEDGER_FILE
    await asyncio.to_thread(ledger_without_tables, db, empty=False)
    assert await asyncio.to_thread(_crash_state, state, tmp_path / "copy") == CrashState("ok")
    (state / "clips").mkdir()
    assert await _settled(db, [], state) is False  # not settled: edged has not begun


@pytest.mark.parametrize("empty", [True, False], ids=["empty-file", "no-tables"])
async def test_edged_run_starts_on_a_ledger_file_without_tables(
    emulator: Emulator, clip_factory, edged_run, tmp_path: Path, empty: bool
):
    db = tmp_path / "state" / LEDGER_FILE
    await asyncio.to_thread(ledger_without_tables, db, empty=empty)
    clip = await clip_factory("rec-1.mp4", folder=tmp_path / "nvr")
    camera = f"cameras:\n  - name: yard\n    folder: {clip.parent}\n    pattern: '*.mp4'\n"
    config = write_config(tmp_path, emulator.url, extra=camera + "    since: 1d\n")
    run = await edged_run(config)

    async def done() -> bool:
        try:
            found = await asyncio.to_thread(rows, db, "SELECT path, state FROM clips")
        except sqlite3.OperationalError:
            return False  # the tables are not there yet
        return [(r["path"], r["state"]) for r in found] == [(str(clip), "done")]

    await run.until(done, "the folder's clip done on the fresh ledger")
    code = await run.stop(signal.SIGTERM)
    err = run.log()
    assert code == 0, err
    assert "Traceback" not in err
    assert [r[0] for r in await asyncio.to_thread(rows, db, "PRAGMA integrity_check")] == ["ok"]
    tables = await asyncio.to_thread(rows, db, "SELECT name FROM sqlite_master WHERE type='table'")
    assert {"meta", "clips", "events", "results", "alerts", "outages"} <= {r[0] for r in tables}
