"""What makes a bench comparison trustworthy, shared by the benches that compare edged with a
reference program (ffmpeg, curl).

- The machine is printed first: cores, load average at the start, Python, PyAV, FFmpeg.
- The two sides run alternately, A B A B, at least three pairs, so a neighbour's load or a
  warming cache falls on both sides instead of on one.
- Every run is checked (`Run.failed`): a reference run that did not do its job (clips
  missing, gaps) gives no ratio, and neither does an edged run that failed; the reason is
  printed instead of a figure.
- A ratio is printed as the median of the valid pairs with its spread (lowest–highest), and
  how many pairs were valid.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

MIN_PAIRS = 3


@dataclass
class Run:
    """One run of one side: its figures by name, and why it does not count (or None)."""

    figures: dict[str, float]
    failed: str | None = None
    notes: dict[str, str] = field(default_factory=dict)


def machine() -> str:
    """One line: cores, load average now, Python, PyAV and FFmpeg versions."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    parts = [f"{os.cpu_count()} cores", f"load average {load} at start"]
    parts.append(f"Python {platform.python_version()}")
    try:
        import av

        parts.append(f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")
    except ImportError:
        pass
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=10)
        version = out.stdout.split("\n", 1)[0].removeprefix("ffmpeg version ").split()[0]
        parts.append(f"ffmpeg {version}")
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return "machine: " + ", ".join(parts)


def alternate(
    sides: Sequence[tuple[str, Callable[[int], Run]]], pairs: int
) -> dict[str, list[Run]]:
    """Runs each side in turn, `pairs` rounds (A B A B …): side(i) is the i-th run of it."""
    if pairs < MIN_PAIRS:
        print(f"note: {pairs} pairs; a ratio needs at least {MIN_PAIRS}", file=sys.stderr)
    runs: dict[str, list[Run]] = {name: [] for name, _ in sides}
    for i in range(pairs):
        for name, side in sides:
            runs[name].append(side(i))
    return runs


def ratios(subject: list[Run], reference: list[Run], key: str) -> tuple[list[float], list[str]]:
    """Pairwise `key` ratios subject/reference over the pairs where both runs counted, and the
    reasons of the pairs that did not."""
    found: list[float] = []
    refused: list[str] = []
    for i, (mine, theirs) in enumerate(zip(subject, reference, strict=True)):
        if theirs.failed:
            refused.append(f"pair {i + 1}: reference run failed ({theirs.failed})")
        elif mine.failed:
            refused.append(f"pair {i + 1}: edged run failed ({mine.failed})")
        elif theirs.figures[key] <= 0:
            refused.append(f"pair {i + 1}: reference {key} is {theirs.figures[key]}")
        else:
            found.append(mine.figures[key] / theirs.figures[key])
    return found, refused


def summary(values: list[float], *, digits: int = 2) -> str:
    """`median (lowest–highest)`, or `-` without values."""
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def verdict(values: list[float], refused: list[str], *, pairs: int) -> str:
    """The ratio to print: the median and spread when at least MIN_PAIRS pairs counted,
    else why there is none."""
    if len(values) >= min(MIN_PAIRS, pairs) and values:
        text = f"{summary(values)} over {len(values)} pairs"
        if refused:
            text += f" ({len(refused)} refused)"
        return text
    return "no ratio: " + ("; ".join(refused) or "no valid pairs")
