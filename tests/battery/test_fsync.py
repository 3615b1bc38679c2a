"""Promise: a transition that returned survives a power cut (docs/reliability.md,
"Durability"). kill -9 keeps the page cache, so the crash tests pass without a single fsync;
these check the settings and the fsyncs themselves, from outside edged:

- the ledger as edged opens it (its own code path, edged.ledger.schema.connect) runs with
  journal_mode=WAL, synchronous=FULL, busy_timeout 10 s and foreign keys on; WAL is a
  property of the file, so a connection of the test's own sees it on the ledger a real
  `edged run` made;
- `strace -f -e trace=fsync,fdatasync` on a real `edged run`: every committed transition of
  a clip (each event row) is followed by an fsync or fdatasync of the ledger's WAL while
  edged runs, not only at a checkpoint or at exit (what synchronous=NORMAL would give).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

from edged.emulator import Emulator
from edged.ledger.schema import connect
from edged.ledger.store import LEDGER_FILE, Ledger
from edged.media.samples import make_clip
from tests.support.edged import EDGED, write_config
from tests.support.environment import missing, require_program
from tests.support.ledger import rows
from tests.support.waiting import eventually

#: `PID EPOCH fdatasync(FD</path>) = 0`, as strace -f -ttt -y prints it.
SYNC = re.compile(r"^\d+\s+(?P<at>\d+\.\d+)\s+(?:fsync|fdatasync)\(\d+<(?P<path>[^>]*)>\)\s+= 0")


def test_the_ledger_opens_with_the_durability_settings_it_promises(tmp_path: Path):
    conn = connect(tmp_path / LEDGER_FILE)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()
    # The same through the Ledger edged runs on (opened again: the settings are not stored
    # in the file, they are edged's every time).
    ledger = Ledger(tmp_path)
    try:
        assert [r[0] for r in ledger.db.rows("PRAGMA synchronous")] == [2]
        assert [r[0] for r in ledger.db.rows("PRAGMA busy_timeout")] == [10_000]
    finally:
        ledger.close()


def children(pid: int) -> list[int]:
    """Blocking: the process ids `pid` started (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


async def test_every_committed_transition_is_followed_by_an_fsync_of_the_wal(
    emulator: Emulator, tmp_path: Path
):
    strace = require_program("strace")
    nvr = tmp_path / "nvr"
    for number, title in enumerate(("Alice at the door", "the yard", "Alice again")):
        await asyncio.to_thread(make_clip, nvr / f"rec-{number}.mp4", seconds=1.0, title=title)
    cameras = f"cameras:\n  - name: yard\n    folder: {nvr}\n    pattern: '*.mp4'\n    since: 1d\n"
    persons = "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
    alerts = "alerts:\n  cooldown: 0s\n  sinks:\n    - type: log\n"
    config = write_config(tmp_path, emulator.url, extra=cameras + persons + alerts)
    db = tmp_path / "state" / LEDGER_FILE
    trace = tmp_path / "strace.txt"
    argv = [strace, "-f", "--seccomp-bpf", "-qq", "-e", "signal=none", "-ttt", "-y"]
    argv += ["-e", "trace=fsync,fdatasync", "-o", str(trace), *EDGED, "run", "-c", str(config)]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:

        async def settled() -> bool:
            if process.returncode is not None:
                assert process.stderr is not None
                err = (await process.stderr.read()).decode(errors="replace")
                if "ptrace" in err.lower() and "not permitted" in err.lower():
                    missing(f"strace cannot trace here: {err.strip()[:200]}")
                raise AssertionError(f"edged under strace exited {process.returncode}: {err}")
            if not db.exists():
                return False
            try:
                clips = await asyncio.to_thread(rows, db, "SELECT state FROM clips")
                sent = await asyncio.to_thread(rows, db, "SELECT state FROM alerts")
            except sqlite3.OperationalError:
                return False  # the tables are not there yet
            return (
                len(clips) == 3
                and all(r["state"] == "done" for r in clips)
                and len(sent) == 2
                and all(r["state"] == "sent" for r in sent)
            )

        await eventually(settled, timeout_s=60, what="every clip done and both alerts sent")
        running_until = time.time()
        await asyncio.sleep(0)  # nothing more to wait for: the trace so far is the proof
        (edged,) = await asyncio.to_thread(children, process.pid)
        os.kill(edged, signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0

    wal = str(db) + "-wal"
    syncs = []
    for line in (await asyncio.to_thread(trace.read_text)).splitlines():
        found = SYNC.match(line)
        if found and found["path"] == wal:
            syncs.append(float(found["at"]))
    events = await asyncio.to_thread(rows, db, "SELECT clip_id, at, kind FROM events ORDER BY at")
    assert len(events) >= 3 * 5, [dict(e) for e in events]  # queued … done, for each clip
    live = [at for at in syncs if at <= running_until]
    for event in events:
        after = [at for at in live if at >= event["at"]]
        assert after, f"no fsync of the WAL after {dict(event)} while edged ran"
        assert after[0] - event["at"] < 10, f"no fsync of the WAL soon after {dict(event)}"
    # One sync at least per committed transaction: far more than a checkpoint or two.
    assert len(live) >= len({(e["clip_id"], e["kind"]) for e in events}) // 2, (
        len(live),
        len(events),
    )
    # WAL is a property of the file: an outside connection sees it.
    assert [r[0] for r in await asyncio.to_thread(rows, db, "PRAGMA journal_mode")] == ["wal"]
