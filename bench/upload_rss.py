"""Peak memory and speed of `edged upload` on a large clip, against curl on the same file.

    python bench/upload_rss.py [--size 2GB] [--dir /tmp/edged-bench]

Starts `edged emulate` on a free port, writes a valid MP4 padded to --size, then
uploads it twice to the emulator's uploadFile endpoint: once with `edged upload
--wait` (the real pipeline: probe, ledger, streamed multipart, callback) and once
with curl's multipart upload as the reference. Prints wall time, throughput and
peak RSS of each, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edged.config import parse_size
from edged.samples import make_padded_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import EDGED, free_port, wait_for_port


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes; ru_maxrss is KiB on Linux) of one child process."""
    started = time.perf_counter()
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL) as child:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {child.returncode}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2GB")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = parse_size(args.size)
    work = Path(args.dir or tempfile.mkdtemp(prefix="edged-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    clip = make_padded_file(work / "bench-clip.mp4", size)
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
    try:
        wait_for_port(api_port)
        edged_s, edged_rss = run_measured(
            [*EDGED, "upload", "-c", str(config), "--wait", str(clip)]
        )
        curl = shutil.which("curl")
        figures = {"size_bytes": size, "edged_s": edged_s, "edged_peak_rss_mb": edged_rss / 1e6}
        if curl:
            req = json.dumps(
                {
                    "user_prompt": "x",
                    "system_prompt": "y",
                    "callback": f"http://127.0.0.1:{callback_port}/none",
                }
            )
            curl_s, curl_rss = run_measured(
                [
                    curl,
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-H",
                    "Authorization: bench-key",
                    "-F",
                    f"req={req};type=application/json",
                    "-F",
                    f"files=@{clip}",
                    f"http://127.0.0.1:{api_port}/v1/understand/uploadFile",
                ]
            )
            figures |= {
                "curl_s": curl_s,
                "curl_peak_rss_mb": curl_rss / 1e6,
                "time_ratio_edged_over_curl": edged_s / curl_s,
                "rss_ratio_edged_over_curl": edged_rss / curl_rss,
            }
    finally:
        emulator.terminate()
        emulator.wait(10)
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:28} {value:,.2f}" if isinstance(value, float) else f"{key:28} {value:,}")
    mb_s = size / 1e6 / edged_s
    print(f"{'edged_throughput_mb_s':28} {mb_s:,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
