"""Peak memory, time and CPU of `edged upload` on large clips, against curl on the same file.

    python bench/upload_rss.py [--sizes 200MB,1GB] [--pairs 3] [--dir /tmp/edged-bench]

Starts `edged emulate` on a free port; for each size writes a valid MP4 padded to it, then
uploads it to the emulator's uploadFile endpoint, alternately (A B A B, --pairs rounds)
with `edged upload --wait` (the real pipeline: probe, ledger, streamed multipart, callback)
and with curl's multipart upload as the reference. A run counts only when it worked: edged
exits 0 (the clip went through), curl gets HTTP 200 and the emulator's success code.
Prints the machine, every run (wall time, CPU seconds, CPU seconds per GB, peak RSS) and
per size the median ratios edged/curl with their spread (bench/pairs.py). Peak RSS should
not grow with the size: the body is streamed.

What the CPU figures measure: user + system CPU of the uploading process alone (`edged
upload` or curl; the emulator receiving the body is another process, not counted). "CPU s
per GB" divides the whole process's CPU by the size, so it counts edged's start-up (Python,
imports, config, ledger, callback listener: about a second, whatever the size) as if it were
per byte. With two sizes or more the bench also prints the marginal CPU per GB: the slope
between the smallest and the largest size, (median CPU at the large size - median CPU at
the small one) / (difference in GB), for edged and for curl, the fixed CPU per run it
implies, and the edged/curl ratio of the slopes. Its spread comes from the per-round
slopes (round i of the small size against round i of the large one). No marginal ratio is
given when a reference run failed in a round, or fewer than three rounds counted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edged.config.model import parse_size
from edged.media.samples import make_padded_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import EDGED, free_port, wait_for_port
from bench.pairs import MIN_PAIRS, Run, alternate, machine, ratios, summary, verdict


def run_measured(argv: list[str]) -> tuple[int, dict[str, float]]:
    """Exit code, and wall seconds, CPU seconds (user + system) and peak RSS (MB; ru_maxrss
    is KiB on Linux) of one child process."""
    started = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as child:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    figures = {
        "wall_s": time.perf_counter() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss * 1024 / 1e6,
    }
    return child.returncode, figures


def edged_side(config: Path, clip: Path, size: int):  # type: ignore[no-untyped-def]
    def run(i: int) -> Run:
        # A fresh ledger each run: the same file again would be known and not sent at all.
        state = config.parent / "state"
        shutil.rmtree(state, ignore_errors=True)
        code, figures = run_measured([*EDGED, "upload", "-c", str(config), "--wait", str(clip)])
        return _run(figures, size, None if code == 0 else f"edged upload exited {code}")

    return run


def curl_side(curl: str, api_port: int, callback_port: int, clip: Path, size: int, work: Path):  # type: ignore[no-untyped-def]
    req = json.dumps(
        {
            "user_prompt": "x",
            "system_prompt": "y",
            "callback": f"http://127.0.0.1:{callback_port}/none",
        }
    )
    answer = work / "curl-answer.json"

    def run(i: int) -> Run:
        answer.unlink(missing_ok=True)
        argv = [curl, "-sS", "-o", str(answer), "-H", "Authorization: bench-key"]
        argv += ["-F", f"req={req};type=application/json", "-F", f"files=@{clip}"]
        argv += [f"http://127.0.0.1:{api_port}/v1/understand/uploadFile"]
        code, figures = run_measured(argv)
        failed = f"curl exited {code}" if code else None
        if failed is None:
            try:
                got = json.loads(answer.read_text()).get("code")
            except (OSError, ValueError, AttributeError):
                got = None
            if str(got).strip("0") != "":  # 0 or "0000": success
                failed = f"the emulator answered code {got!r}"
        return _run(figures, size, failed)

    return run


def _run(figures: dict[str, float], size: int, failed: str | None) -> Run:
    figures["cpu_s_per_gb"] = figures["cpu_s"] / (size / 1e9)
    return Run(figures, failed)


def show(size: int, who: str, run: Run) -> None:
    f = run.figures
    counts = "yes" if run.failed is None else f"NO: {run.failed}"
    print(f"{size / 1e6:>7.0f} {who:<10} {f['wall_s']:>7.2f} {f['cpu_s']:>7.2f} "
          f"{f['cpu_s_per_gb']:>9.2f} {f['rss_mb']:>7.1f}  {counts}", flush=True)  # fmt: skip


def _valid_cpu(runs: list[Run]) -> list[float]:
    return [r.figures["cpu_s"] for r in runs if not r.failed]


def marginal(by_size: dict[int, dict[str, list[Run]]], pairs: int) -> None:
    """The marginal CPU per GB of each side, between the smallest and the largest size (see
    the module's docstring), and the edged/curl ratio of the two."""
    small, large = min(by_size), max(by_size)
    span = f"{small / 1e6:.0f}→{large / 1e6:.0f} MB"
    if small == large:
        print("marginal CPU per GB: needs two sizes", flush=True)
        return
    span_gb = (large - small) / 1e9
    needed = min(MIN_PAIRS, pairs)
    slopes: dict[str, float] = {}
    for who in ("edged", "curl"):
        low, high = _valid_cpu(by_size[small][who]), _valid_cpu(by_size[large][who])
        if len(low) < needed or len(high) < needed:
            print(f"marginal {who:<5} CPU s per GB ({span}): no figure, "
                  f"{len(low)} and {len(high)} valid runs", flush=True)  # fmt: skip
            continue
        slope = (statistics.median(high) - statistics.median(low)) / span_gb
        fixed = statistics.median(low) - slope * small / 1e9
        rounds = [
            (b.figures["cpu_s"] - a.figures["cpu_s"]) / span_gb
            for a, b in zip(by_size[small][who], by_size[large][who], strict=True)
            if not a.failed and not b.failed
        ]
        slopes[who] = slope
        print(f"marginal {who:<5} CPU s per GB ({span}): {slope:.2f} from medians, per round "
              f"{summary(rounds)}; fixed CPU s per run {fixed:.2f}", flush=True)  # fmt: skip
    found: list[float] = []
    refused: list[str] = []
    rounds_of = zip(
        by_size[small]["edged"], by_size[large]["edged"],
        by_size[small]["curl"], by_size[large]["curl"], strict=True,
    )  # fmt: skip
    for i, (e_low, e_high, c_low, c_high) in enumerate(rounds_of):
        if c_low.failed or c_high.failed:
            refused.append(f"round {i + 1}: reference run failed ({c_low.failed or c_high.failed})")
        elif e_low.failed or e_high.failed:
            refused.append(f"round {i + 1}: edged run failed ({e_low.failed or e_high.failed})")
        elif (reference := c_high.figures["cpu_s"] - c_low.figures["cpu_s"]) <= 0:
            refused.append(f"round {i + 1}: reference slope is {reference:.2f} s")
        else:
            found.append((e_high.figures["cpu_s"] - e_low.figures["cpu_s"]) / reference)
    if "edged" in slopes and "curl" in slopes and slopes["curl"] > 0 and len(found) >= needed:
        text = f"{slopes['edged'] / slopes['curl']:.2f} from medians, per round "
        text += verdict(found, refused, pairs=pairs)
    else:
        text = "no ratio: " + ("; ".join(refused) or "no valid figures from both sides")
    print(f"marginal edged / curl CPU per GB ({span}): {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200MB,1GB")
    parser.add_argument("--size", help="one size (the same as --sizes SIZE)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is needed as the reference")
    sizes = [parse_size(value) for value in (args.size or args.sizes).split(",")]
    print(machine(), flush=True)
    work = Path(args.dir or tempfile.mkdtemp(prefix="edged-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    api_port, callback_port = free_port(), free_port()
    config = work / "config.yaml"
    config.write_text(
        f"api:\n  base_url: http://127.0.0.1:{api_port}\n  api_key: bench-key\n"
        f"callback:\n  listen: 127.0.0.1:{callback_port}\n"
        f"storage:\n  dir: {work / 'state'}\n"
    )
    emulator = subprocess.Popen(
        [*EDGED, "emulate", "--port", str(api_port), "--callback-delay", "0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(
        f"{'MB':>7} {'run':<10} {'wall s':>7} {'CPU s':>7} {'CPU s/GB':>9} {'RSS MB':>7}  counts?"
    )
    by_size: dict[int, dict[str, list[Run]]] = {}
    try:
        wait_for_port(api_port)
        for size in sizes:
            clip = make_padded_file(work / f"bench-clip-{size}.mp4", size)

            def shown(who: str, side, size: int = size):  # type: ignore[no-untyped-def]
                def run(i: int) -> Run:
                    result: Run = side(i)
                    show(size, f"{who} #{i + 1}", result)
                    return result

                return run

            runs = alternate(
                [
                    ("edged", shown("edged", edged_side(config, clip, size))),
                    (
                        "curl",
                        shown("curl", curl_side(curl, api_port, callback_port, clip, size, work)),
                    ),
                ],
                args.pairs,
            )
            by_size[size] = runs
            for key in ("cpu_s_per_gb", "wall_s", "rss_mb"):
                found, refused = ratios(runs["edged"], runs["curl"], key)
                print(f"{size / 1e6:>7.0f} edged / curl {key}: "
                      f"{verdict(found, refused, pairs=args.pairs)}", flush=True)  # fmt: skip
            mine = [r.figures["cpu_s_per_gb"] for r in runs["edged"] if not r.failed]
            print(f"{size / 1e6:>7.0f} edged CPU s per GB: {summary(mine)}", flush=True)
            clip.unlink()
        marginal(by_size, args.pairs)
    finally:
        emulator.terminate()
        emulator.wait(10)
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
