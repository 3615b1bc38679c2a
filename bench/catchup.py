"""Catch-up of a folder camera: N recordings already on disk when `edged run` starts.

    python bench/catchup.py [--files 50000] [--dir DIR] [--poll]

Writes N distinct small MP4 recordings (copies of one 1 s clip, each its own inode) into an
NVR-like tree (a folder per day and hour), with mtimes spread over the last days, then
starts `edged run` on it (`since: 30d`) and measures the time until the ledger holds every
file as a clip, and edged's peak RSS (VmHWM). Uploads are held back by an emulator that
refuses the key (uploads pause at the first 401), so the figures are the folder source's.
Two references on the same tree, timed in the same process (all see a warm page cache: the
files were just written): `find DIR -type f | wc -l`, the bare listing; and edged's own
completeness probe (`probe_video`, PyAV) run on every file in one loop, the least any
validating catch-up must do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edged.media.probe import probe_video
from edged.media.samples import make_clip

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import EDGED, free_port, wait_for_port

DAY_S = 86400


def write_tree(folder: Path, count: int, sample: bytes) -> None:
    """`count` recordings, one every 10 s of the last days, under YYYY-MM-DD/HH/."""
    now = time.time()
    for index in range(count):
        mtime = now - 3600 - (count - index) * 10
        stamp = time.gmtime(mtime)
        path = folder / time.strftime("%Y-%m-%d/%H", stamp) / time.strftime("%M.%S.mp4", stamp)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample)
        os.utime(path, (mtime, mtime))


def reference_s(folder: Path) -> tuple[float, int]:
    """Seconds taken by `find DIR -type f | wc -l`, and the count it printed."""
    started = time.perf_counter()
    output = subprocess.run(
        f"find {folder} -type f | wc -l", shell=True, check=True, capture_output=True, text=True
    ).stdout
    return time.perf_counter() - started, int(output)


def probe_all_s(folder: Path) -> float:
    """Seconds taken to probe every recording once, in one loop."""
    started = time.perf_counter()
    for root, _, names in os.walk(folder):
        for name in names:
            probe_video(Path(root, name), max_bytes=1 << 40, max_duration_s=1e9)
    return time.perf_counter() - started


def proc_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def clip_count(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM clips").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet


def measure(work: Path, files: int, poll: bool, deadline_s: float) -> dict[str, float]:
    folder = work / "nvr"
    folder.mkdir(parents=True)
    sample = make_clip(work / "sample.mp4", seconds=1, width=64, height=48, fps=5).read_bytes()
    started = time.perf_counter()
    write_tree(folder, files, sample)
    written_s = time.perf_counter() - started
    find_s, found = reference_s(folder)
    assert found == files, (found, files)
    probe_s = probe_all_s(folder)

    api_port = free_port()
    config = work / "config.yaml"
    config.write_text(
        f"api:\n  base_url: http://127.0.0.1:{api_port}\n  api_key: refused-key\n"
        f"callback:\n  listen: 127.0.0.1:{free_port()}\n"
        f"  public_url: http://127.0.0.1:{free_port()}\n"
        f"storage:\n  dir: {work / 'state'}\n"
        f"metrics:\n  listen: 127.0.0.1:{free_port()}\n"
        f"cameras:\n  - name: nvr\n    folder: {folder}\n    since: 30d\n"
        + ("    poll: 10s\n" if poll else "")
    )
    emulator = subprocess.Popen(
        [*EDGED, "emulate", "--port", str(api_port), "--api-key", "the-right-key"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = (work / "edged.log").open("w")
    daemon: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(api_port)
        started = time.perf_counter()
        daemon = subprocess.Popen([*EDGED, "run", "-c", str(config)], stdout=log, stderr=log)
        ledger = work / "state" / "ledger.sqlite3"
        queued, rss_kib = 0, 0
        while queued < files:
            if daemon.poll() is not None:
                raise SystemExit(f"edged exited {daemon.returncode}; see {log.name}")
            if time.perf_counter() - started > deadline_s:
                raise SystemExit(f"only {queued} of {files} queued after {deadline_s:.0f}s")
            time.sleep(0.5)
            queued = clip_count(ledger)
            rss_kib = max(rss_kib, proc_kib(daemon.pid, "VmRSS"))
        queue_s = time.perf_counter() - started
        peak_kib = max(rss_kib, proc_kib(daemon.pid, "VmHWM"))
    finally:
        # Killed: how edged stops is not measured, and uploads paused by the refused key
        # would hold a graceful stop for its whole grace period.
        for process in (daemon, emulator):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(60)
        log.close()
    return {
        "files": files,
        "tree_written_s": written_s,
        "edged_start_to_all_queued_s": queue_s,
        "edged_files_per_s": files / queue_s,
        "edged_peak_rss_mb": peak_kib / 1024,
        "find_wc_s": find_s,
        "time_ratio_edged_over_find": queue_s / find_s,
        "probe_loop_s": probe_s,
        "time_ratio_edged_over_probe_loop": queue_s / probe_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--dir", type=Path, default=None, help="kept afterwards when given")
    parser.add_argument("--poll", action="store_true", help="polling mode (network shares)")
    parser.add_argument("--deadline", type=float, default=3600.0, help="seconds")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="edged-catchup-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        figures = measure(work, args.files, args.poll, args.deadline)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:34} {value:,.2f}" if isinstance(value, float) else f"{key:34} {value:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
