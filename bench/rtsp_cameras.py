"""N RTSP cameras: edged against N `ffmpeg -c copy -f segment` processes, same streams.

    python bench/rtsp_cameras.py [--cameras 1,8,32,64] [--seconds 20] [--pairs 3]
                                 [--layouts threads]

Serves a generated 720p H.264 + AAC stream at about 4.6 Mbit/s from GStreamer's rtsp-server
(bench/rtsp_sources.py: one server process per 4 cameras, a pipeline per connection, each
server checked before every run), then for each N runs the sides in turn, A B A B (--pairs
rounds, at least 3):

- `edged run` with N rtsp cameras (layout `threads`, what edged does: one process, a thread
  per camera connection), its uploads kept out of the measure;
- for the record, layout `workers` (the same RTSP source code in ceil(N/8) processes of 8
  cameras each) and `processes` (one process per camera);
- N `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment` processes: the reference.

Each runs for --seconds after a warm-up; CPU seconds (user + system, from /proc) and RSS
are measured over that window. Then every clip is checked (bench/rtsp_checks.py): the frames
of the test stream tell their index, so the first frame of each clip must follow the last
frame of the one before (a gap or an overlap otherwise), and each camera must have the clips
its running time makes. A run that misses either does not count: no ratio is printed from a
failed reference run. Prints the machine, every run, and per N the median CPU ratio with its
spread (bench/pairs.py).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import free_port
from bench.pairs import Run, alternate, machine, ratios, verdict
from bench.rtsp_checks import STOP_LIMIT_S, Result, count_gaps, worst_lateness
from bench.rtsp_sources import CAMERAS_PER_SERVER, Cameras
from tests.support.rtsp_server import make_stream_file

CAMERAS_PER_WORKER = 8
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(pids: list[int], warmup_s: float, seconds: float) -> tuple[float, float]:
    """CPU seconds of `pids` over `seconds` after `warmup_s`, and their RSS at the end."""
    time.sleep(warmup_s)
    before = sum(cpu_seconds(pid) for pid in pids)
    time.sleep(seconds)
    after = sum(cpu_seconds(pid) for pid in pids)
    return after - before, sum(rss_mb(pid) for pid in pids)


# ---- the three contenders -------------------------------------------------------------------


def edged_config(work: Path, urls: list[str], clip_s: int) -> Path:
    """Uploads are kept out of the measure: every clip falls outside its camera's upload
    hours (a one-minute window twelve hours away) and is kept as skipped_schedule."""
    away = datetime.now(UTC) + timedelta(hours=12)
    hours = f"{away:%H}:00-{away:%H}:01"
    cameras = "".join(
        f"  - name: cam{n:02d}\n    rtsp: {url}\n    clip_seconds: {clip_s}\n"
        f'    schedule: ["{hours}"]\n'
        for n, url in enumerate(urls)
    )
    path = work / "config.yaml"
    path.write_text(
        f"api:\n  base_url: http://127.0.0.1:{free_port()}\n  api_key: bench\n"
        f"callback:\n  listen: 127.0.0.1:{free_port()}\n"
        f"metrics:\n  listen: 127.0.0.1:{free_port()}\n"
        f"storage:\n  dir: {work / 'state'}\ncameras:\n{cameras}"
    )
    return path


def run_edged(work: Path, urls: list[str], args: argparse.Namespace) -> Result:
    config = edged_config(work, urls, args.clip_seconds)
    argv = [sys.executable, "-m", "edged.cli", "--log-level", "WARNING", "run", "-c", str(config)]
    process = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        cpu, rss = measure([process.pid], args.warmup, args.seconds)
    finally:
        stopped = stop([process], signal.SIGTERM)
    folders = sorted((work / "state" / "clips").glob("cam*"))
    late = worst_lateness([work / "state" / "ledger.sqlite3"])
    return Result(cpu, rss, *count_gaps(folders, "*.mp4"), late, *stopped)


def run_workers(work: Path, urls: list[str], args: argparse.Namespace) -> Result:
    return run_processes(work, urls, args, per_process=CAMERAS_PER_WORKER)


def run_processes(
    work: Path, urls: list[str], args: argparse.Namespace, *, per_process: int = 1
) -> Result:
    """The RTSP sources of `per_process` cameras in each process (worker mode below)."""
    processes = []
    for n in range(math.ceil(len(urls) / per_process)):
        folder = work / f"cam{n:02d}"
        folder.mkdir()
        share = urls[n * per_process : (n + 1) * per_process]
        config = edged_config(folder, share, args.clip_seconds)
        argv = [sys.executable, __file__, "--worker", str(config)]
        processes.append(subprocess.Popen(argv, stderr=subprocess.DEVNULL))
    try:
        cpu, rss = measure([p.pid for p in processes], args.warmup, args.seconds)
    finally:
        stopped = stop(processes, signal.SIGTERM)
    folders = sorted(work.glob("cam*/state/clips/*"))
    late = worst_lateness(sorted(work.glob("cam*/state/ledger.sqlite3")))
    return Result(cpu, rss, *count_gaps(folders, "*.mp4"), late, *stopped)


def run_ffmpeg(work: Path, urls: list[str], args: argparse.Namespace) -> Result:
    processes = []
    for n, url in enumerate(urls):
        folder = work / f"ffmpeg{n:02d}"
        folder.mkdir()
        argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp"]
        argv += ["-i", url, "-c", "copy", "-map", "0", "-f", "segment"]
        argv += ["-segment_time", str(args.clip_seconds), "-reset_timestamps", "1"]
        argv += [str(folder / "%05d.mp4")]
        processes.append(subprocess.Popen(argv, stderr=subprocess.DEVNULL))
    try:
        cpu, rss = measure([p.pid for p in processes], args.warmup, args.seconds)
    finally:
        stopped = stop(processes, signal.SIGINT)  # ffmpeg finishes its segment
    clips, gaps = count_gaps(sorted(work.glob("ffmpeg*")), "*.mp4")
    return Result(cpu, rss, clips, gaps, None, *stopped)


def stop(processes: list[subprocess.Popen[bytes]], how: signal.Signals) -> tuple[float, int]:
    """Signal every process to stop; one that has not ended STOP_LIMIT_S later (its server
    died mid-run, say) is killed, and the checks fail its run. Returns the seconds to the
    last one's end and how many were killed."""
    start = time.monotonic()
    for process in processes:
        process.send_signal(how)
    killed = 0
    for process in processes:
        try:
            process.wait(max(1.0, start + STOP_LIMIT_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            killed += 1
    return time.monotonic() - start, killed


def worker(config_path: Path) -> None:
    """`--worker CONFIG`: the RTSP sources of CONFIG's cameras, alone in this process."""
    from edged.config.model import load_config
    from edged.ledger.store import Ledger
    from edged.ledger.thread import AsyncLedger
    from edged.sources.rtsp import RtspSource

    async def run() -> None:
        config = load_config(config_path)
        db = AsyncLedger(Ledger(config.storage.dir))
        sources = [RtspSource(db, camera, config.storage.dir) for camera in config.cameras]
        tasks = [asyncio.create_task(source.run()) for source in sources]
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.aclose()

    asyncio.run(run())


# ---- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--pairs", type=int, default=3, help="A B rounds (at least 3)")
    parser.add_argument("--clip-seconds", type=int, default=10)
    parser.add_argument(
        "--noise", type=float, default=1 / 40, help="textured share of the picture: bitrate"
    )
    parser.add_argument("--layouts", default="threads", help="threads,workers,processes")
    parser.add_argument("--keep", type=Path, help="keep clips and configs in this folder")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="edged-bench-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        length = args.warmup + args.seconds + 120  # every connection starts at 0
        media = make_stream_file(
            root / "stream.mp4",
            seconds=length,
            fps=25,
            gop=25,
            width=1280,
            height=720,
            noise=args.noise,
            sliced=False,
        )
        mbps = media.stat().st_size * 8 / length / 1e6
        print(f"stream: 1280x720 25 fps H.264 + AAC, {mbps:.1f} Mbit/s, clips of "
              f"{args.clip_seconds}s, {args.seconds:.0f}s measured after "
              f"{args.warmup:.0f}s, {args.pairs} pairs; a GStreamer server per "
              f"{CAMERAS_PER_SERVER} cameras, a pipeline per connection")  # fmt: skip
        print(f"{'N':>3} {'run':<12} {'CPU s':>7} {'CPU %':>6} {'RSS MB':>7} {'clips':>6} "
              f"{'gaps':>5} {'late s':>7} {'stop s':>7}  counts?")  # fmt: skip
        for n in [int(value) for value in args.cameras.split(",")]:
            bench_n(root, media, n, args)


RUNNERS = {"threads": run_edged, "workers": run_workers, "processes": run_processes}


def bench_n(root: Path, media: Path, n: int, args: argparse.Namespace) -> None:
    with Cameras(media, n) as cameras:

        def side(who: str, runner: Callable[..., Result]) -> Callable[[int], Run]:
            def run(i: int) -> Run:
                cameras.revive()
                work = root / f"{who}-{n}-{i}"
                work.mkdir()
                result = runner(work, cameras.urls, args)
                ran = args.warmup + args.seconds
                checked = result.check(n, ran, args.clip_seconds)
                show(n, f"{who} #{i + 1}", checked, args.seconds)
                return checked

            return run

        sides = [(f"edged-{layout}", side(f"edged-{layout}", RUNNERS[layout]))
                 for layout in args.layouts.split(",")]  # fmt: skip
        sides.append(("ffmpeg", side("ffmpeg", run_ffmpeg)))
        runs = alternate(sides, args.pairs)
        reference = runs.pop("ffmpeg")
        for who, mine in runs.items():
            cpu, refused = ratios(mine, reference, "cpu_s")
            rss, _ = ratios(mine, reference, "rss_mb")
            print(f"{n:>3} {who} / ffmpeg: CPU {verdict(cpu, refused, pairs=args.pairs)}; "
                  f"RSS {verdict(rss, refused, pairs=args.pairs)}", flush=True)  # fmt: skip


def show(n: int, who: str, run: Run, seconds: float) -> None:
    f = run.figures
    share = 100 * f["cpu_s"] / seconds
    late = run.notes.get("late_s", "-")
    stopped = run.notes.get("stop_s", "-")
    counts = "yes" if run.failed is None else f"NO: {run.failed}"
    print(f"{n:>3} {who:<12} {f['cpu_s']:>7.1f} {share:>6.1f} {f['rss_mb']:>7.0f} "
          f"{f['clips']:>6.0f} {f['gaps']:>5.0f} {late:>7} {stopped:>7}  {counts}",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
