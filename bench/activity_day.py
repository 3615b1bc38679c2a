"""A generated test day for the activity gate: what it catches, what it would send, what it costs.

    python bench/activity_day.py [--size 1080p|720p|360p] [--fps 5] [--pairs 3] [--keep DIR]

Ten minutes of one camera (a yard; 5 fps, crf 28 and a 2 Mbit/s cap to keep the file small,
a keyframe every 2 s as cameras send), scripted: four walks (fast, 3 s across; slow, 40 s; with
only the legs inside the zone; at night with noise) and the distractors the gate must ignore (a
cloud's brightness ramp, dusk, sensor noise all day and more at night, an exposure step, a
flickering sign under a mask, a burnt-in clock inside the zone). It is encoded with PyAV,
examined with the default settings (with a zone and a mask, as a camera's config would give
them), and it prints: the walks caught and the false events; active seconds / recorded seconds
and the share of 10 s clips with activity; the CPU of the gate per camera-second against
`ffmpeg -skip_frame nokey -i FILE -f null -` on the same file, A B A B for `--pairs` pairs,
median and spread, with the box's cores and load. What `upload: activity` then sends, as
event clips, and how soon after each event, is measured end to end by bench/activity_live.py
(the same day served over RTSP to `edged run`).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edged.activity import ClipActivity, Decode, Polygon, Settings, examine_file
from tests.support.activity_scene import Box, Scene, Walker, write_video

DAY_S = 600
#: A camera's bitrate cap (1080p cameras send 2-6 Mbit/s); without it the night's noise alone
#: would make the file hundreds of MB.
MAXRATE_KBIT = 2000
CLIP_S = 10
#: 360p is for a quick look at the events; the CPU goal is for 1080p.
SIZES = {"1080p": (1920, 1080), "720p": (1280, 720), "360p": (640, 360)}
#: Where the sky ends: the zone is the ground below it, as a yard camera's would be.
YARD = [[0, 0.35], [1, 0.35], [1, 1], [0, 1]]
SIGN = Box(0.08, 0.5, 0.2, 0.65)

WALKS = {
    "fast walk (3 s across)": Walker(40, 3),
    "slow walk (40 s across)": Walker(170, 40),
    "walk with only the legs in the zone": Walker(260, 10, top=0.12),
    "walk at night, in noise": Walker(450, 12, level=200),
}
DISTRACTORS = (
    "all day: sensor noise (2 levels by day, 5 at night), a sign flickering (masked), "
    "a burnt-in clock (in the zone)",
    "80-140 s: a cloud, brightness to 50 % and back",
    "320-380 s: dusk, brightness to 30 %",
    "520 s: the exposure steps up by half",
)


def day(width: int, height: int, fps: int) -> Scene:
    return Scene(
        width=width,
        height=height,
        fps=fps,
        seconds=DAY_S,
        walkers=tuple(WALKS.values()),
        gain=((80, 1.0), (110, 0.5), (140, 1.0), (320, 1.0), (380, 0.3), (519.9, 0.3), (520, 0.45)),
        noise=((0, 2.0), (320, 2.0), (380, 5.0)),
        flicker=SIGN,
        flicker_period_s=0.7,
        clock=Box(0.62, 0.92, 0.98, 0.99),
    )


def settings() -> Settings:
    return Settings(zones=(Polygon.parse(YARD),), masks=(Polygon.parse(SIGN.polygon()),))


def runs(seconds: tuple[int, ...], gap_s: int = 2) -> list[tuple[int, int]]:
    """Active seconds to events: runs with gaps of at most `gap_s` merged; (first, last)."""
    events: list[tuple[int, int]] = []
    for second in seconds:
        if events and second - events[-1][1] <= gap_s:
            events[-1] = (events[-1][0], second)
        else:
            events.append((second, second))
    return events


def report_events(activity: ClipActivity) -> None:
    events = runs(activity.active)
    defaults = Settings()
    print(
        f"\nevents at the default settings (sensitivity {defaults.sensitivity:g},"
        f" min_area {defaults.min_area:.2%} of the zone):"
    )
    caught = 0
    for name, walk in WALKS.items():
        seen = [s for s in activity.active if walk.start_s - 1 <= s <= walk.end_s + 1]
        caught += bool(seen)
        where = f"active {seen[0]}-{seen[-1]} s" if seen else "MISSED"
        print(f"  {name:38s} {walk.start_s:5.0f}-{walk.end_s:4.0f} s: {where}")
    false = [
        (a, b)
        for a, b in events
        if not any(a <= w.end_s + 1 and b >= w.start_s - 1 for w in WALKS.values())
    ]
    print(f"  caught {caught} of {len(WALKS)}; false events: {len(false)} {false or ''}")
    print("  distractors: " + "; ".join(DISTRACTORS))
    clips = {second // CLIP_S for second in activity.active}
    total_clips = DAY_S // CLIP_S
    print(
        f"\nactive seconds / recorded seconds: {activity.active_seconds} / {DAY_S:.0f}"
        f" = {100 * activity.active_seconds / DAY_S:.1f} %"
    )
    print(
        f"{CLIP_S} s clips with activity / clips: {len(clips)} / {total_clips}"
        f" = {100 * len(clips) / total_clips:.1f} % (before the rolls: bench/activity_live.py"
        " measures what is sent)"
    )
    print(
        f"peak score {activity.peak_score:.1f} (noise sigmas), peak area {activity.peak_area:.4f}"
    )


def cpu_of(run: Callable[[], None], *, children: bool) -> float:
    """CPU seconds (user + system, all threads) that `run` costs this process or its children."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    before = resource.getrusage(who)
    run()
    after = resource.getrusage(who)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def gate_run(path: Path, gate: Settings, decode: Decode) -> Callable[[], None]:
    def run() -> None:
        examine_file(path, gate, decode=decode)

    return run


def ffmpeg_keyframes(path: Path) -> Callable[[], None]:
    def run() -> None:
        command = ["ffmpeg", "-nostdin", "-v", "error", "-skip_frame", "nokey", "-i", str(path)]
        result = subprocess.run([*command, "-f", "null", "-"], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg exited {result.returncode}: {result.stderr.strip()[-300:]}")

    return run


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} %, spread {min(values):.3f}-{max(values):.3f} %"


def measure(path: Path, pairs: int, gate: Settings) -> None:
    print(f"\nCPU per camera-second ({pairs} pairs, A = the gate, B = ffmpeg, alternating):")
    print(
        f"  cores: {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}),"
        f" load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    gate_pct: list[float] = []
    ffmpeg_pct: list[float] = []
    ffmpeg_failed = ""
    for _ in range(pairs):
        gate_pct.append(
            100 * cpu_of(gate_run(path, gate, Decode.KEYFRAMES), children=False) / DAY_S
        )
        if shutil.which("ffmpeg") is None:
            ffmpeg_failed = "ffmpeg is not installed"
            continue
        try:
            ffmpeg_pct.append(100 * cpu_of(ffmpeg_keyframes(path), children=True) / DAY_S)
        except RuntimeError as error:
            ffmpeg_failed = str(error)
    print(f"  load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  A gate (keyframes, 320 px gray, compare): {spread(gate_pct)} of a core")
    if ffmpeg_failed:
        print(f"  B ffmpeg -skip_frame nokey: FAILED ({ffmpeg_failed}); no ratio printed")
    else:
        print(f"  B ffmpeg -skip_frame nokey -f null:     {spread(ffmpeg_pct)} of a core")
        ratio = statistics.median(gate_pct) / statistics.median(ffmpeg_pct)
        print(f"  ratio of medians A / B: {ratio:.2f}")
    # For the choice of the default: decoding every frame (needed for any sample between
    # keyframes) at two examined frames a second. One run: it is the slow one.
    start = time.monotonic()
    every = cpu_of(gate_run(path, gate, Decode.ALL), children=False)
    print(
        f"  (for comparison, one run) every frame decoded, 2 a second examined:"
        f" {100 * every / DAY_S:.3f} % of a core ({time.monotonic() - start:.1f} s wall)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p")
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--keyframe-s", type=float, default=2.0)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the day's video here and keep it")
    args = parser.parse_args()
    width, height = SIZES[args.size]
    folder = Path(tempfile.mkdtemp(prefix="activity-day-")) if args.keep is None else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"day-{args.size}.mp4"
    try:
        start = time.monotonic()
        write_video(
            day(width, height, args.fps),
            path,
            keyframe_s=args.keyframe_s,
            crf=28,
            maxrate_kbit=MAXRATE_KBIT,
        )
        print(
            f"test day: {DAY_S} s of {args.size} at {args.fps} fps, a keyframe every"
            f" {args.keyframe_s:g} s, H.264 crf 28 capped at {MAXRATE_KBIT} kbit/s:"
            f" {path.stat().st_size / 1e6:.1f} MB,"
            f" generated in {time.monotonic() - start:.0f} s"
        )
        gate = settings()
        report_events(examine_file(path, gate))
        measure(path, args.pairs, gate)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
