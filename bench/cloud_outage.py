"""A cloud outage of several minutes against a real `edged run`, with a backlog of clips.

    python bench/cloud_outage.py [--outage 5m] [--clips 20] [--during 10] [--retry-after 30]
                                 [--keep DIR]

The emulator (in this process, over HTTP) refuses every request for --outage: 503 without
Retry-After for the first half (edged's own backoff sets the pace), then 429 with
Retry-After for the second. `edged run` watches a folder camera; --clips recordings land
in it as the outage begins (the backlog) and --during more while it lasts (the cameras go
on recording). Once the service is back, every clip must end `done`.

Prints: the outage's length, the requests made during it (and per minute) against the bound
the backoff allows (edged.backoff.tries_bound, from the upload settings edged runs with),
how long the backlog took to drain after recovery, clips done, failed and lost, and
duplicate uploads (accepted by the API more often than the ledger knows). Exits 1 when a
clip is lost or failed, or the bound is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from edged.backoff import delay_ceiling, tries_bound
from edged.config.model import parse_config, parse_duration
from edged.emulator import Emulator, EmulatorOptions, run_emulator
from edged.media.samples import make_clip
from edged.service.wiring import upload_settings
from edged.upload.uploader import UploadSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import EDGED, free_port

TAIL = 1e-9  # chance that a correct backoff still goes over the printed bound


def write_config(work: Path, api_url: str, folder: Path) -> str:
    port = free_port()
    text = (
        f"api:\n  base_url: {api_url}\n  api_key: bench-key\n"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
        f"cameras:\n  - name: gate\n    folder: {folder}\n    pattern: '*.mp4'\n"
        f"storage:\n  dir: {work / 'state'}\n"
        "alerts:\n  sinks:\n    - type: log\n"
        f"metrics:\n  listen: 127.0.0.1:{free_port()}\n"
    )
    (work / "config.yaml").write_text(text)
    return text


def record(folder: Path, number: int) -> None:
    """One recording, written as `.part` and renamed, as NVRs do (blocking)."""
    name = f"gate-{number:04d}.mp4"
    part = folder / f"{name}.part"
    make_clip(part, seconds=2.0, width=640, height=480, title="Alice" if number % 3 == 0 else None)
    os.rename(part, folder / name)


def query(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def rows(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    return await asyncio.to_thread(query, db, sql, *params)


async def wait_for_log(log: Path, text: str, process: asyncio.subprocess.Process) -> None:
    while text not in await asyncio.to_thread(log.read_text, errors="replace"):
        if process.returncode is not None:
            raise SystemExit(f"edged exited {process.returncode}; see {log}")
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, work: Path) -> int:
    outage_s = parse_duration(args.outage)
    folder = work / "nvr"
    folder.mkdir(parents=True)
    options = EmulatorOptions(
        callback_delay_s=0.5,
        retry_after_s=args.retry_after,
        retry_after_statuses=(429,),
        outage_statuses=(503, 429),
    )
    async with run_emulator(options, seed=1) as emulator:
        settings = upload_settings(parse_config(write_config(work, emulator.url, folder)))
        log = work / "edged.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *EDGED, "run", "-c", str(work / "config.yaml"), stdout=sink, stderr=sink
            )
        try:
            await wait_for_log(log, "edged running", process)
            return await measure(args, emulator, settings, folder, work, outage_s, process)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 60)


async def measure(
    args: argparse.Namespace,
    emulator: Emulator,
    settings: UploadSettings,
    folder: Path,
    work: Path,
    outage_s: float,
    process: asyncio.subprocess.Process,
) -> int:
    db = work / "state" / "ledger.sqlite3"
    base_s, cap_s = settings.backoff_base_s, settings.backoff_cap_s
    emulator.options.outage_s = outage_s  # from now
    began = time.time()
    print(f"outage of {outage_s:.0f}s begins; {args.clips} clips queued, {args.during} to come")
    for number in range(args.clips):
        await asyncio.to_thread(record, folder, number)
    for number in range(args.clips, args.clips + args.during):
        await asyncio.sleep(outage_s * 0.8 / max(1, args.during))
        await asyncio.to_thread(record, folder, number)
    while (left := emulator.options.outage_left_s()) > 0:
        await asyncio.sleep(min(30.0, left))
        refused = sum(1 for r in emulator.received if r.status in (503, 429))
        print(f"  {time.time() - began:5.0f}s: {refused} requests refused so far")
    recovered = time.time()
    decided = await rows(db, "SELECT MAX(next_attempt_at) AS t FROM clips")
    written = args.clips + args.during
    deadline = recovered + cap_s + 120
    while time.time() < deadline:
        states = await rows(db, "SELECT state, COUNT(*) AS n FROM clips GROUP BY state")
        counts = {row["state"]: row["n"] for row in states}
        if sum(counts.get(s, 0) for s in ("done", "failed")) >= written:
            break
        if process.returncode is not None:
            raise SystemExit(f"edged exited {process.returncode}; see {work / 'edged.log'}")
        await asyncio.sleep(1.0)
    return report(emulator, db, written, outage_s, recovered, decided, base_s, cap_s)


def report(
    emulator: Emulator,
    db: Path,
    written: int,
    outage_s: float,
    recovered: float,
    decided: list[sqlite3.Row],
    base_s: float,
    cap_s: float,
) -> int:
    clips = query(db, "SELECT * FROM clips")
    states = Counter(row["state"] for row in clips)
    refused = [r for r in emulator.received if r.status in (503, 429)]
    statuses = Counter(r.status for r in refused)
    per_clip = tries_bound(outage_s, base_s=base_s, cap_s=cap_s, tail=TAIL / max(1, written))
    bound = per_clip * written
    waits = query(
        db, "SELECT clip_id, COUNT(*) AS n FROM events WHERE kind='retry_wait' GROUP BY clip_id"
    )
    most = max((row["n"] for row in waits), default=0)
    submitted = Counter(
        row["clip_id"] for row in query(db, "SELECT clip_id FROM events WHERE kind='submitted'")
    )
    accepted: Counter[int] = Counter()
    for request in emulator.received:
        callback = str(request.req.get("callback", ""))
        if request.status == 200 and request.task_id and "/callbacks/" in callback:
            accepted[int(callback.split("/callbacks/")[1].split("/")[0])] += 1
    duplicates = sum(max(0, accepted[row["id"]] - submitted[row["id"]]) for row in clips)
    resubmitted = sum(max(0, n - 1) for n in submitted.values())
    last_done = max((row["done_at"] for row in clips if row["done_at"]), default=recovered)
    done, failed = states["done"], states["failed"]
    lost = written - done - failed  # not in the ledger, or never settled
    minutes = outage_s / 60
    set_for = (decided[0]["t"] or recovered) - recovered
    lines = [
        f"outage:               {outage_s:.0f} s (503, then 429 with Retry-After)",
        f"requests during it:   {len(refused)} {dict(statuses)}",
        f"requests per minute:  {len(refused) / minutes:.1f}; the backoff allows"
        f" {bound / minutes:.1f} ({written} clips x {per_clip} tries in {outage_s:.0f} s)",
        f"most tries by a clip: {most} (bound {per_clip}); its backoff reached"
        f" {delay_ceiling(most, base_s=base_s, cap_s=cap_s):.0f} s",
        f"at recovery:          the last retry was due in {set_for:.0f} s",
        f"drain after recovery: {last_done - recovered:.1f} s",
        f"clips:                {written} written, {done} done, {failed} failed, {lost} lost",
        f"duplicate uploads:    {duplicates}; resubmitted after expiry: {resubmitted}",
    ]
    print("\n".join(lines))
    ok = lost == 0 and failed == 0 and len(refused) <= bound and duplicates == 0
    print("OK" if ok else "PROBLEM")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", default="5m", help="how long the service is down")
    parser.add_argument("--clips", type=int, default=20, help="backlog when the outage begins")
    parser.add_argument("--during", type=int, default=10, help="clips recorded during it")
    parser.add_argument("--retry-after", type=float, default=30.0, help="seconds, with the 429s")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):  # progress lines as they come, into a file too
        sys.stdout.reconfigure(line_buffering=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="edged-outage-"))
    print(f"work dir: {work}")
    return asyncio.run(run(args, work))


if __name__ == "__main__":
    sys.exit(main())
