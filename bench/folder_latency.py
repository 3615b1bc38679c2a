"""Delay from an NVR closing a recording to edged queueing it (inotify mode).

    python bench/folder_latency.py [--files 200] [--rate 20]

Writes --files complete MP4 recordings into a watched folder at --rate per second, each
closed once written, and measures for each file the time from its close to its clip's
`found_at` in the ledger (the folder source: event, completeness probe, fingerprint,
ledger commit). As a reference, a bare watchdog observer on the same folder in the same
process measures the time from the close to the inotify event alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from edged.config.model import parse_config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.samples import make_clip
from edged.sources.folder import FolderSource


class CloseTimes(FileSystemEventHandler):
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def on_closed(self, event: FileSystemEvent) -> None:
        self.seen.setdefault(str(event.src_path), time.time())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def write_files(folder: Path, data: bytes, count: int, rate: float) -> dict[str, float]:
    closed: dict[str, float] = {}
    for index in range(count):
        path = folder / f"cam-{index:04d}.mp4"
        with path.open("wb") as handle:
            handle.write(data)
        closed[str(path)] = time.time()
        time.sleep(1 / rate)  # the NVR's pace
    return closed


async def measure(files: int, rate: float) -> None:
    with tempfile.TemporaryDirectory(prefix="edged-bench-") as tmp:
        work = Path(tmp)
        folder = work / "nvr"
        folder.mkdir()
        data = make_clip(work / "sample.mp4", seconds=2).read_bytes()
        config = parse_config(
            f"api: {{api_key: k}}\ncameras:\n  - name: cam\n    folder: {folder}\n"
        )
        db = AsyncLedger(Ledger(work / "state"))
        source = FolderSource(db, config.cameras[0])
        bare = CloseTimes()
        observer = Observer()
        observer.schedule(bare, str(folder))
        observer.start()
        task = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(source.ready.wait(), 30)
            closed = await asyncio.to_thread(write_files, folder, data, files, rate)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = await db.call(db.ledger.db.rows, "SELECT path, found_at FROM clips")
                if len(rows) >= files:
                    break
                await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            observer.stop()
            observer.join()
            await db.aclose()
    queued = {row["path"]: row["found_at"] for row in rows}
    edged_ms = [(queued[p] - t) * 1000 for p, t in closed.items() if p in queued]
    inotify_ms = [(bare.seen[p] - t) * 1000 for p, t in closed.items() if p in bare.seen]
    print(f"files written {files}, queued {len(edged_ms)}, missed {files - len(edged_ms)}")
    for name, values in (("edged close->queued", edged_ms), ("inotify close->event", inotify_ms)):
        print(
            f"{name:22} median {statistics.median(values):7.1f} ms   "
            f"p99 {percentile(values, 0.99):7.1f} ms   max {max(values):7.1f} ms"
        )
    print(
        f"{'ratio of medians':22} {statistics.median(edged_ms) / statistics.median(inotify_ms):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="files per second")
    args = parser.parse_args()
    asyncio.run(measure(args.files, args.rate))


if __name__ == "__main__":
    main()
