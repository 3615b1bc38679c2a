"""Frame-difference activity over small grayscale frames, robust to lighting and sensor noise.

The promise: feed frames of one camera in time order (any size, the same for all of them) and
each gets a `Sample`: how much of the busiest zone changed (`area`, a fraction of that zone), how
strongly (`score`, the mean change of the changed pixels in units of the frame's noise), and
whether that is activity (`area >= min_area`). A global brightness change (a cloud, dusk, the
camera's auto-exposure) and sensor noise give no activity; masked pixels are never looked at.

How: each frame is compared with a background that adapts slowly (time constant `adapt_s`).
Before the comparison the frame is scaled to the background's mean brightness (a global gain)
and the median difference is removed (a global offset). The noise is the median absolute
difference (robust: a figure covering a few percent does not move it). A pixel changed if the
3x3 mean of its difference exceeds `k` noise sigmas and an absolute floor (both set by
`sensitivity`) and its own difference half that. An opening with a square a 64th of the width
wide then removes specks and thin strokes (noise, a burnt-in clock's digits). Two guards
follow: while the lighting changes, a pixel that kept its raw value (an overlay, a saturated
lamp) did not move; and a pixel that changed in most of the last minute (`_BUSY_S`) is busy (a
clock's seconds, a screen, leaves), not counted until it calms down. A mask remains the clean
way to silence a known spot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edged.activity.zones import ActivityError, BoolMask, Polygon, Region

Gray = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

#: Median absolute deviation to a Gaussian sigma.
_MAD_TO_SIGMA = 1.4826
#: |log gain| above which the lighting is changing (5 %): static pixels are then not activity.
_LIGHTING_CHANGE = 0.05
#: How long a pixel's habit of changing is remembered, and the share that makes it busy.
_BUSY_S = 60.0
_BUSY = 0.5


@dataclass(frozen=True)
class Settings:
    """What a camera's activity gate is told; every value is checked when built."""

    #: 0..1; higher finds fainter changes (fewer noise sigmas, a lower absolute floor).
    sensitivity: float = 0.5
    #: The fraction of a zone that must change for activity: 0.05 %, which a person a tenth of
    #: the frame's height exceeds in a full-frame zone; the distractors of the bench leave 0.
    min_area: float = 0.0005
    zones: tuple[Polygon, ...] = ()
    masks: tuple[Polygon, ...] = ()
    #: How fast the background follows lasting changes (a parked car, a shadow), in seconds.
    adapt_s: float = 20.0

    def __post_init__(self) -> None:
        _fraction("sensitivity", self.sensitivity, low_open=False)
        _fraction("min_area", self.min_area, low_open=True)
        if not _number(self.adapt_s) or self.adapt_s <= 0:
            raise ActivityError(
                f"adapt_s: expected a positive number of seconds, got {self.adapt_s!r}"
            )
        for name in ("zones", "masks"):
            for index, item in enumerate(getattr(self, name)):
                if not isinstance(item, Polygon):
                    raise ActivityError(f"{name}[{index}]: expected a Polygon, got {item!r}")

    @property
    def sigmas(self) -> float:
        """How many noise sigmas a pixel must change by: 8 at sensitivity 0, 2 at 1."""
        return 8.0 - 6.0 * self.sensitivity

    @property
    def floor(self) -> float:
        """The smallest change (in 0..255 levels) that counts, whatever the noise: 20 to 4."""
        return 20.0 - 16.0 * self.sensitivity


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _fraction(name: str, value: object, *, low_open: bool) -> None:
    if not _number(value):
        raise ActivityError(f"{name}: expected a number in 0..1, got {value!r}")
    assert isinstance(value, int | float)
    if value > 1 or value < 0 or (low_open and value == 0):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ActivityError(f"{name}: {value!r} is outside {interval}")


@dataclass(frozen=True)
class Sample:
    """One examined frame: `t_s` from the start of the clip."""

    t_s: float
    score: float
    area: float
    active: bool


class Detector:
    """The state of one camera's gate: its background, noise level and regions. Not thread-safe:
    one detector per camera, fed from one thread."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._region: Region | None = None
        self._background: Floats | None = None
        self._sigma = 0.0
        # All set by the first frame (and again after a change of size).
        self._last_t = self._busy_t = 0.0
        self._previous = self._busy = np.zeros((0, 0), dtype=np.float32)

    def feed(self, gray: Gray, t_s: float) -> Sample:
        """Compare one grayscale frame (uint8, height x width) with the background."""
        if gray.ndim != 2:
            raise ActivityError(f"expected a 2-D grayscale frame, got shape {gray.shape}")
        frame = gray.astype(np.float32)
        region = self._region_for(frame.shape[1], frame.shape[0])
        background = self._background
        if background is None:
            self._background = self._previous = frame
            self._busy = np.zeros(frame.shape, dtype=np.float32)
            self._last_t = self._busy_t = t_s
            return Sample(t_s, 0.0, 0.0, False)

        looked = region.analysed
        # Global gain and offset: lighting that changes everywhere at once is not activity.
        gain = float(background[looked].mean()) / max(float(frame[looked].mean()), 1.0)
        raw = frame * np.float32(gain) - background
        # A 3x3 mean divides uncorrelated noise by 3 and leaves a figure's body as it is.
        diff = _box3(raw)
        # A strided subset is enough for the two medians and keeps them cheap.
        sub = diff[looked][::5]
        offset = np.float32(np.median(sub))
        diff -= offset
        raw -= offset
        sigma = _MAD_TO_SIGMA * float(np.median(np.abs(sub - offset)))
        # Smoothed so that one frame cannot raise its own threshold much.
        self._sigma = sigma if self._sigma == 0.0 else 0.7 * self._sigma + 0.3 * sigma
        threshold = max(self.settings.sigmas * max(self._sigma, 0.5), self.settings.floor)
        magnitude = np.abs(diff)
        # The mean widens a thin stroke (a clock's digit) to 3 pixels; requiring the pixel's own
        # change too keeps strokes thin, so that the opening removes them.
        candidate = (magnitude > threshold) & (np.abs(raw) > threshold / 2)
        if abs(math.log(max(gain, 1e-3))) > _LIGHTING_CHANGE:
            # While the lighting changes, a pixel whose value stayed put did not follow it: an
            # overlay (a clock) or a saturated lamp, not something that moved.
            candidate &= np.abs(frame - self._previous) > self.settings.floor / 2
        moved = _opening(candidate) & looked
        # A pixel that changed in most of the last minute is a clock's seconds, a screen,
        # leaves in the wind: its own business, not activity (a figure passes in seconds).
        changed = moved & (self._busy < _BUSY)
        self._note_busy(moved, t_s)
        self._previous = frame

        area = max(
            float(np.count_nonzero(changed & zone)) / zone_pixels(zone) for zone in region.zones
        )
        count = int(np.count_nonzero(changed))
        score = float(magnitude[changed].mean()) / max(self._sigma, 0.5) if count else 0.0

        self._adapt(frame, changed, t_s)
        return Sample(t_s, score, area, area >= self.settings.min_area)

    def _note_busy(self, changed: BoolMask, t_s: float) -> None:
        rate = np.float32(1.0 - math.exp(-max(t_s - self._busy_t, 0.0) / _BUSY_S))
        self._busy_t = t_s
        self._busy += rate * (changed.astype(np.float32) - self._busy)

    def _region_for(self, width: int, height: int) -> Region:
        region = self._region
        if region is None or (region.width, region.height) != (width, height):
            if region is not None:
                # A new size (the stream changed): start over rather than compare unlike frames.
                self._background = None
            region = Region.build(width, height, self.settings.zones, self.settings.masks)
            self._region = region
        return region

    def _adapt(self, frame: Floats, changed: BoolMask, t_s: float) -> None:
        assert self._background is not None
        dt = max(t_s - self._last_t, 0.0)
        self._last_t = t_s
        rate = 1.0 - math.exp(-dt / self.settings.adapt_s)
        # Changed pixels adapt four times slower, so a figure that stops is not absorbed at once.
        alpha = np.where(changed, np.float32(rate / 4), np.float32(rate))
        self._background += alpha * (frame - self._background)


def zone_pixels(zone: BoolMask) -> int:
    return max(int(np.count_nonzero(zone)), 1)


def _box3(image: Floats) -> Floats:
    """The mean of each pixel's 3x3 neighbourhood (edges padded by repetition)."""
    padded = np.pad(image, 1, mode="edge")
    height, width = image.shape
    out = np.zeros_like(image)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out += padded[dy : dy + height, dx : dx + width]
    out *= np.float32(1 / 9)
    return out


def _opening(mask: BoolMask) -> BoolMask:
    """Erode then dilate with a square of a 64th of the frame's width (5 px at 320, and at
    least 3): what survives is at least that wide. A person a tenth of the frame's height is
    wider; a clock's strokes, wires and twigs are not."""
    size = max(3, (mask.shape[1] // 64) | 1)
    return _grow(_grow(mask, size, erode=True), size, erode=False)


def _grow(mask: BoolMask, size: int, *, erode: bool) -> BoolMask:
    """A square erosion or dilation of side `size` (odd), as two one-dimensional passes."""
    reach = size // 2
    out = mask
    for axis in (0, 1):
        # Outside the frame counts as changed for an erosion, so the border does not eat in.
        padded = np.pad(
            out, [(reach, reach) if a == axis else (0, 0) for a in (0, 1)], constant_values=erode
        )
        length = out.shape[axis]
        parts = [padded.take(np.arange(k, k + length), axis=axis) for k in range(size)]
        out = np.logical_and.reduce(parts) if erode else np.logical_or.reduce(parts)
    return out


@dataclass(frozen=True)
class Second:
    """One second of a clip: the strongest sample that covers any part of it."""

    index: int
    score: float
    area: float
    active: bool


def per_second(samples: Sequence[Sample], duration_s: float) -> tuple[Second, ...]:
    """Spread samples over whole seconds. A sample stands for the time up to the next one (with
    keyframes 2 s apart, the second between them is unseen): an active one marks all of it."""
    seconds = max(math.ceil(duration_s), 0)
    score = [0.0] * seconds
    area = [0.0] * seconds
    active = [False] * seconds
    ordered = sorted(samples, key=lambda sample: sample.t_s)
    for index, sample in enumerate(ordered):
        end = ordered[index + 1].t_s if index + 1 < len(ordered) else duration_s
        first = max(math.floor(sample.t_s), 0)
        last = min(max(math.ceil(end) - 1, first), seconds - 1)
        for second in range(first, last + 1):
            score[second] = max(score[second], sample.score)
            area[second] = max(area[second], sample.area)
            active[second] = active[second] or sample.active
    return tuple(Second(i, score[i], area[i], active[i]) for i in range(seconds))
