"""How a run of bench/rtsp_cameras.py is checked: every camera made the clips its running
time makes, and no clip has a gap.

The frames of the test stream tell their index (tests/support/rtsp_server.py), so the first
frame of each clip must follow the last frame of the clip before; a clip that does not decode
is a gap too. A run that misses either does not count (`Result.check` gives a failed `Run`),
nor does one whose processes had to be killed at the stop.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av

from bench.pairs import Run
from tests.support.rtsp_server import PERIOD, index_of

#: A connection's first clip starts at its first keyframe, a second or two after the start.
CONNECT_SLACK_S = 4.0
#: A process not ended this long after its stop signal is killed, and its run fails.
STOP_LIMIT_S = 60.0


@dataclass
class Result:
    cpu_s: float
    rss_mb: float
    clips: list[int]  # per camera
    gaps: int
    late_s: float | None = None  # worst delay from a clip's end to its ledger entry
    stop_s: float = 0.0  # from the stop signal to the last process's end
    killed: int = 0  # processes that had not stopped STOP_LIMIT_S after the signal

    def check(self, cameras: int, ran_s: float, clip_s: float) -> Run:
        """The run counts when every camera made the clips its running time makes (the
        whole ones and the one in progress at the stop) without a gap."""
        expected = math.floor(max(0.0, ran_s - CONNECT_SLACK_S) / clip_s) + 1
        short = [n for n in self.clips if n < expected]
        failed = None
        if len(self.clips) < cameras:
            failed = f"clips from {len(self.clips)} of {cameras} cameras"
        elif short:
            failed = f"{len(short)} cameras with fewer than {expected} clips ({min(short)})"
        elif self.gaps:
            failed = f"{self.gaps} gaps"
        elif self.killed:
            failed = f"{self.killed} killed, not stopped {STOP_LIMIT_S:.0f} s after the signal"
        elif self.cpu_s <= 0:
            failed = "no CPU time measured"
        figures = {"cpu_s": self.cpu_s, "rss_mb": self.rss_mb, "clips": sum(self.clips)}
        figures["gaps"] = self.gaps
        run = Run(figures, failed)
        run.notes["stop_s"] = f"{self.stop_s:.1f}"
        if self.late_s is not None:
            run.notes["late_s"] = f"{self.late_s:.2f}"
        return run


def worst_lateness(ledgers: list[Path]) -> float | None:
    """Seconds from a clip's last frame (wall clock) to the ledger holding it, worst case."""
    worst: float | None = None
    for path in ledgers:
        if not path.exists():  # edged did not start: the clip checks fail the run
            continue
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT start_at, duration_s, found_at FROM clips").fetchall()
        for start_at, duration_s, found_at in rows:
            end = datetime.fromisoformat(start_at).timestamp() + duration_s
            worst = max(worst or 0.0, found_at - end)
    return worst


def _index(frame: av.VideoFrame) -> int:
    def mean(plane: av.video.plane.VideoPlane) -> float:
        data = bytes(plane)
        row = plane.line_size * (plane.height // 2)
        values = data[row : row + plane.width]
        return sum(values) / len(values)

    return index_of(*(mean(plane) for plane in frame.planes))


def ends(path: Path) -> tuple[int, int] | None:
    """Index of the first and the last frame of a clip (decodes its first and last GOP)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first = _index(next(container.decode(stream)))
            container.seek(container.duration or 0, backward=True, any_frame=False, stream=None)
            last = None
            for frame in container.decode(stream):
                last = _index(frame)
            return (first, last if last is not None else first)
    except (av.FFmpegError, StopIteration, OSError):
        return None


def count_gaps(folders: list[Path], pattern: str) -> tuple[list[int], int]:
    """(clips per folder with any, gaps): a gap is a clip that does not start with the frame
    after the previous clip's last one (or that does not decode)."""
    clips: list[int] = []
    gaps = 0
    for folder in folders:
        previous: int | None = None
        paths = sorted(folder.rglob(pattern), key=lambda p: (p.parent.name, p.name))
        if paths:
            clips.append(len(paths))
        for path in paths:
            found = ends(path)
            if found is None:
                gaps += 1
                previous = None
                continue
            first, last = found
            if previous is not None and (previous + 1) % PERIOD != first:
                gaps += 1
            previous = last
    return clips, gaps
