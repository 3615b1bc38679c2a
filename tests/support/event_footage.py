"""Recordings of a camera with `upload: activity` for the crash soak: a scripted scene cut into
short clips, encoded once, copied into an NVR folder as a recorder writes them, and what the
gate must do with each clip, said by the script alone.

The promise: `SCRIPT` is one cycle of the camera's recordings, segments of back-to-back clips
of `CLIP_S` with `GAP_S` of no recording between segments (a recorder that records on motion
leaves such gaps). In it figures walk across (tests/support/activity_scene.py): one walk over
three clips (an event of several clips with its rolls), one inside a clip alone in its
segment (an event of one clip, sent as it is), a line of walkers over more than a minute (an
event cut by `max_event: 1m`, the next one right after it), and clips in which nothing moves.

`ClipSet.make(folder)` encodes each distinct clip once (160x120, 5 fps, a keyframe a second)
and checks that the detector finds in it what `expect` assumes (`ScriptError` if not; a
script that leaves a clip with a walk in it in doubt is refused so too).
`Script.expect(n)` says what the gate must do with the n-th recording (any cycle):

- `MUST_GO`: a walk is in it, or it is certainly within the rolls of a walk: sent, on its own
  or merged into an event clip;
- `IDLE`: no walk in it and none near enough for any roll to reach it: kept back idle;
- `EDGE`: at the edge of a roll, where the detector's seconds decide: either.

"Certainly" has a margin: a walk counts as seen at a keyframe only with the figure well inside
the frame and away from where it stood at the clip's first keyframe (each clip's background
is its first keyframe), and a roll of the gate (edged/sources/activity_rolls.py) reaches at
most from the start of the first clip with a walk in it to the end of the last.

`copy_like_nvr` writes the n-th recording into the folder in chunks under a temporary name,
its mtime the end of its recording, then renames it.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edged.activity import examine_file
from tests.support.activity_scene import Scene, Walker, write_video

CLIP_S = 4
GAP_S = 60.0
WIDTH, HEIGHT, FPS = 160, 120, 5
PRE_ROLL_S = POST_ROLL_S = 5.0  # the gate's defaults, which the soak's camera keeps
#: How far the script's times may be from the gate's (its seconds are whole ones).
MARGIN_S = 0.5
#: A figure this far inside the frame, and this far from where it was at the clip's first
#: keyframe (relative to the width; a figure is 0.075 of it), is certainly seen.
INSIDE = (0.1, 0.9)
MOVED = 0.15


class ScriptError(Exception):
    """The detector does not see in the clip set what the script says."""


class Expect(enum.Enum):
    MUST_GO = "must go"
    IDLE = "idle"
    EDGE = "at a roll's edge"


@dataclass(frozen=True)
class Segment:
    """`clips` back-to-back recordings; `walks` as (start, duration) from the segment's start,
    each a figure crossing left to right."""

    name: str
    clips: int
    walks: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Recording:
    """The k-th clip of a cycle: its segment, its time in the cycle, the walks seen in it."""

    k: int
    segment: str
    span: Span
    walkers: tuple[Walker, ...]  # shifted to the clip's own time (0 is its start)


def _x(walker: Walker, t: float) -> float:
    return walker.x0 + (walker.x1 - walker.x0) * (t - walker.start_s) / walker.duration_s


def _visible(walker: Walker, t: float) -> bool:
    return walker.start_s <= t < walker.end_s


class Script:
    def __init__(self, segments: Sequence[Segment]) -> None:
        self.segments = tuple(segments)
        clips: list[Recording] = []
        begin = 0.0
        for segment in self.segments:
            walkers = tuple(Walker(begin + s, d) for s, d in segment.walks)
            for index in range(segment.clips):
                span = Span(begin + index * CLIP_S, begin + (index + 1) * CLIP_S)
                shifted = tuple(
                    Walker(w.start_s - span.start, w.duration_s)
                    for w in walkers
                    if w.start_s < span.end and span.start < w.end_s
                )
                clips.append(Recording(len(clips), segment.name, span, shifted))
            begin += segment.clips * CLIP_S + GAP_S
        self.clips = tuple(clips)
        self.cycle_s = begin
        self._expected = self._expectations()

    def __len__(self) -> int:
        return len(self.clips)

    def start_of(self, n: int) -> float:
        """Seconds from the first recording's start to the n-th's."""
        cycle, k = divmod(n, len(self.clips))
        return cycle * self.cycle_s + self.clips[k].span.start

    def recording(self, n: int) -> Recording:
        return self.clips[n % len(self.clips)]

    def expect(self, n: int) -> Expect:
        return self._expected[n % len(self.clips)]

    def may_stop_before(self, n: int) -> bool:
        """A writer may stop before the n-th recording: after an idle one, which closes every
        event before it (its walks, and the clips their rolls take, are all written)."""
        return n == 0 or self.expect(n - 1) is Expect.IDLE

    @staticmethod
    def seen(clip: Recording) -> tuple[int, ...]:
        """The seconds (from the clip's start) at whose keyframe a walk is certainly seen."""
        found = []
        for t in range(1, CLIP_S):  # the keyframe at 0 is the clip's background
            for walker in clip.walkers:
                if not _visible(walker, t) or not INSIDE[0] <= _x(walker, t) <= INSIDE[1]:
                    continue
                before = [_x(w, 0) for w in clip.walkers if _visible(w, 0)]
                if all(abs(_x(walker, t) - x) >= MOVED for x in before):
                    found.append(t)
                    break
        return tuple(found)

    def _expectations(self) -> tuple[Expect, ...]:
        certain, possible = [], []
        for clip in self.clips:
            seen = self.seen(clip)
            if seen:  # the gate's rolls around these seconds, as edged/sources/activity_rolls
                begin = clip.span.start + min(seen) - PRE_ROLL_S + MARGIN_S
                end = clip.span.start + max(seen) + 1 + POST_ROLL_S - MARGIN_S
                certain.append(Span(begin, end))
            if clip.walkers:
                begin = clip.span.start - PRE_ROLL_S - MARGIN_S
                possible.append(Span(begin, clip.span.end + POST_ROLL_S + MARGIN_S))
        expected = []
        for clip in self.clips:
            if any(window.overlaps(clip.span) for window in certain):
                expected.append(Expect.MUST_GO)
            elif clip.walkers:
                # The script is meant to leave no doubt about a clip with a walk in it.
                raise ScriptError(f"clip {clip.k} has a walk that is not certainly sent")
            elif any(window.overlaps(clip.span) for window in possible):
                expected.append(Expect.EDGE)
            else:
                expected.append(Expect.IDLE)
        return tuple(expected)


def _walkers(
    start: float, count: int, every_s: float, duration_s: float
) -> tuple[tuple[float, float], ...]:
    return tuple((start + i * every_s, duration_s) for i in range(count))


SCRIPT = Script(
    (
        Segment("quiet", 2),
        # Across clips 3-5 of the segment: clips 2 and 6 go with it by the rolls.
        Segment("walk", 9, ((13.5, 9.0),)),
        Segment("alone", 1, ((0.5, 3.0),)),
        # Twelve walkers one after another, 9.5 s to 68.5 s: longer than max_event (1m).
        Segment("crowd", 21, _walkers(9.5, 12, 5.0, 4.0)),
    )
)


@dataclass(frozen=True)
class ClipSet:
    """The cycle's recordings as encoded files (clips alike share one), in `folder`."""

    script: Script
    files: tuple[Path, ...]  # by k

    @classmethod
    def make(cls, folder: Path, script: Script = SCRIPT) -> ClipSet:
        """Blocking: encode the distinct clips once and check what the detector sees."""
        folder.mkdir(parents=True, exist_ok=True)
        made: dict[tuple[Walker, ...], Path] = {}
        files = []
        for clip in script.clips:
            path = made.get(clip.walkers)
            if path is None:
                scene = Scene(
                    width=WIDTH, height=HEIGHT, fps=FPS, seconds=CLIP_S, walkers=clip.walkers
                )
                path = write_video(scene, folder / f"take-{len(made):02d}.mp4", keyframe_s=1.0)
                made[clip.walkers] = path
                _check(clip, path)
            files.append(path)
        return cls(script, tuple(files))


def _check(clip: Recording, path: Path) -> None:
    found = examine_file(path).active
    seen = Script.seen(clip)
    if not set(seen) <= set(found) or (found and not clip.walkers):
        raise ScriptError(
            f"clip {clip.k} ({clip.segment}): the script sees seconds {seen}, the detector {found}"
        )


def recording_name(camera: str, n: int) -> str:
    return f"{camera}-{n:05d}.mp4"


def copy_like_nvr(clip_set: ClipSet, folder: Path, camera: str, n: int, first_start: float) -> Path:
    """Blocking: the n-th recording (its first recorded at `first_start`, epoch seconds)
    written in chunks under a temporary name, its mtime the end of its recording (so edged
    takes its start from it), then renamed into place."""
    data = clip_set.files[n % len(clip_set.files)].read_bytes()
    ended = first_start + clip_set.script.start_of(n) + CLIP_S
    return write_like_nvr(data, folder / recording_name(camera, n), ended_at=ended)


def write_like_nvr(data: bytes, final: Path, *, ended_at: float | None = None) -> Path:
    """Blocking: `data` written in chunks under a temporary name (its mtime `ended_at`, when
    given), then renamed to `final`, as NVRs write their recordings."""
    temp = final.with_name(final.name + ".tmp")
    with temp.open("wb") as handle:
        for start in range(0, len(data), 8192):
            handle.write(data[start : start + 8192])
            handle.flush()
            time.sleep(0.01)  # the writer's pace, not synchronisation
    if ended_at is not None:
        os.utime(temp, (ended_at, ended_at))
    os.rename(temp, final)
    return final
