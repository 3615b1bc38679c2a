"""A scripted camera scene for the activity tests and bench/activity_day.py: frames and files.

The promise: `Scene.render(t)` is the luma plane (uint8) of a static yard at time `t`, with what
the script asks for: figures walking through (`Walker`), the whole picture's brightness changed
(`gain` points, linear in between), sensor noise (`noise` points), a flickering box and a
burnt-in clock. The same scene renders at any size, so tests run at 320x180 and the bench at
1080p. `write_video` encodes it with libx264 at a fixed keyframe interval; `Scene.read_clock`
reads the clock back from a decoded picture (which second of the scene a recording shows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.float32]
#: A rectangle of pixels: y0, y1, x0, x1.
Bar = tuple[int, int, int, int]

#: 7-segment digits: segments a b c d e f g lit for 0..9.
_SEGMENTS = (
    "abcdef",
    "bc",
    "abdeg",
    "abcdg",
    "bcfg",
    "acdfg",
    "acdefg",
    "abc",
    "abcdefg",
    "abcdfg",
)

_DIGIT_OF = {"".join(sorted(lit)): digit for digit, lit in enumerate(_SEGMENTS)}
#: The clock shows 12:07:40 at the scene's second 0.
_CLOCK_FROM_S = 12 * 3600 + 7 * 60 + 40
_CLOCK_DIGITS = 6
#: A bar is lit (drawn at 235) when its middle is brighter than this: the yard under the
#: clock is below 180 at any gain, the noise a few levels.
_LIT = 200.0


@dataclass(frozen=True)
class Walker:
    """A person-sized figure crossing the frame from `x0` to `x1` (relative) in `duration_s`.

    `top` is the relative height of the head; the figure is `height` of the frame tall and a
    third of that wide; `level` its brightness before the scene's gain (the yard is ~90-150).
    """

    start_s: float
    duration_s: float
    top: float = 0.45
    height: float = 0.3
    level: float = 40.0
    x0: float = -0.05
    x1: float = 1.05

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Box:
    """A relative rectangle."""

    x0: float
    y0: float
    x1: float
    y1: float

    def polygon(self) -> list[list[float]]:
        return [[self.x0, self.y0], [self.x1, self.y0], [self.x1, self.y1], [self.x0, self.y1]]


@dataclass(frozen=True)
class Scene:
    width: int = 320
    height: int = 180
    fps: int = 5
    seconds: float = 20.0
    walkers: tuple[Walker, ...] = ()
    #: (t, gain) points: the whole picture times gain; held before the first, after the last.
    gain: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    #: (t, sigma) points: Gaussian noise in 0..255 levels at full resolution.
    noise: tuple[tuple[float, float], ...] = ((0.0, 2.0),)
    flicker: Box | None = None
    flicker_period_s: float = 0.4
    clock: Box | None = None
    seed: int = 7
    _cache: dict[str, object] = field(default_factory=dict, init=False, compare=False, repr=False)

    def render(self, t: float) -> npt.NDArray[np.uint8]:
        image = self._base().copy()
        for walker in self.walkers:
            if walker.start_s <= t < walker.end_s:
                self._draw_walker(image, walker, t)
        if self.flicker is not None and int(t / (self.flicker_period_s / 2)) % 2:
            y0, y1, x0, x1 = self._pixels(self.flicker)
            image[y0:y1, x0:x1] += 90.0
        image *= np.float32(_interpolate(self.gain, t))
        if self.clock is not None:
            self._draw_clock(image, t)
        sigma = _interpolate(self.noise, t)
        if sigma > 0:
            bank = self._noise_bank()
            pick = int(self._rng().integers(len(bank)))
            image += bank[pick] * np.float32(sigma)
        return np.clip(image, 0, 255).astype(np.uint8)

    def frames(self) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
        for index in range(round(self.seconds * self.fps)):
            t = index / self.fps
            yield t, self.render(t)

    # ---- drawing ---------------------------------------------------------------------------

    def _pixels(self, box: Box) -> tuple[int, int, int, int]:
        w, h = self.width, self.height
        return (
            max(int(box.y0 * h), 0),
            min(int(box.y1 * h), h),
            max(int(box.x0 * w), 0),
            min(int(box.x1 * w), w),
        )

    def _base(self) -> Image:
        base = self._cache.get("base")
        if base is None:
            h, w = self.height, self.width
            rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, np.newaxis]
            # Sky above a ground, a house, a path: edges and texture, as a real yard has.
            image = np.where(rows < 0.3, 170.0 - 40.0 * rows, 110.0 + 30.0 * rows)
            image = np.repeat(image, w, axis=1).astype(np.float32)
            coarse = np.random.default_rng(self.seed).normal(0.0, 12.0, (h // 8 + 1, w // 8 + 1))
            image += np.kron(coarse, np.ones((8, 8)))[:h, :w].astype(np.float32)
            for box, level in (
                (Box(0.6, 0.1, 0.9, 0.45), 70.0),
                (Box(0.05, 0.8, 0.95, 0.9), 150.0),
            ):
                y0, y1, x0, x1 = self._pixels(box)
                image[y0:y1, x0:x1] = level
            self._cache["base"] = base = image
        assert isinstance(base, np.ndarray)
        return base

    def _noise_bank(self) -> list[Image]:
        bank = self._cache.get("noise")
        if bank is None:
            # A few full frames of noise, drawn from at random: cheap at 1080p.
            rng = np.random.default_rng(self.seed + 1)
            shape = (self.height, self.width)
            bank = [rng.standard_normal(shape, dtype=np.float32) for _ in range(5)]
            self._cache["noise"] = bank
        assert isinstance(bank, list)
        return bank

    def _rng(self) -> np.random.Generator:
        rng = self._cache.get("rng")
        if rng is None:
            self._cache["rng"] = rng = np.random.default_rng(self.seed + 2)
        assert isinstance(rng, np.random.Generator)
        return rng

    def _draw_walker(self, image: Image, walker: Walker, t: float) -> None:
        h, w = self.height, self.width
        progress = (t - walker.start_s) / walker.duration_s
        height = walker.height * h
        width = height / 3
        cx = (walker.x0 + (walker.x1 - walker.x0) * progress) * w
        top = walker.top * h
        parts = (  # head, body, two legs that swing with the step
            (cx - width * 0.2, top, cx + width * 0.2, top + height * 0.15),
            (cx - width * 0.5, top + height * 0.15, cx + width * 0.5, top + height * 0.6),
        )
        swing = width * 0.25 * np.sin(progress * walker.duration_s * 6.0)
        legs = (
            (
                cx - width * 0.45 + swing,
                top + height * 0.6,
                cx - width * 0.05 + swing,
                top + height,
            ),
            (
                cx + width * 0.05 - swing,
                top + height * 0.6,
                cx + width * 0.45 - swing,
                top + height,
            ),
        )
        for x0, y0, x1, y1 in (*parts, *legs):
            ys = slice(max(int(y0), 0), max(min(int(y1), h), 0))
            xs = slice(max(int(x0), 0), max(min(int(x1), w), 0))
            image[ys, xs] = walker.level

    def _draw_clock(self, image: Image, t: float) -> None:
        total = _CLOCK_FROM_S + int(t)
        text = f"{total // 3600:02d}{total // 60 % 60:02d}{total % 60:02d}"
        for char, bars in zip(text, self._clock_digits(), strict=True):
            for segment in _SEGMENTS[int(char)]:
                ya, yb, xa, xb = bars[segment]
                image[ya:yb, xa:xb] = 235.0

    def _clock_digits(self) -> list[dict[str, Bar]]:
        """The seven bars (y0, y1, x0, x1 in pixels) of each of the clock's six digits."""
        assert self.clock is not None
        y0, y1, x0, x1 = self._pixels(self.clock)
        digit_w = (x1 - x0) / _CLOCK_DIGITS
        stroke = max(1, int((y1 - y0) / 9))
        return [
            _seven_bars(
                x0 + int(index * digit_w + digit_w * 0.15),
                y0,
                x0 + int((index + 1) * digit_w - digit_w * 0.15),
                y1,
                stroke,
            )
            for index in range(_CLOCK_DIGITS)
        ]

    def read_clock(self, luma: npt.NDArray[np.uint8]) -> int | None:
        """The whole second the burnt-in clock shows in a decoded picture of this scene (at
        its size): the scene's own time stamp, to tell which second a recording starts at.
        None when a digit cannot be read (no clock, another size, a picture too damaged)."""
        if self.clock is None or luma.shape[:2] != (self.height, self.width):
            return None
        digits = []
        for bars in self._clock_digits():
            lit = ""
            for segment, (ya, yb, xa, xb) in bars.items():
                # The middle of the bar's length, clear of the bars it meets at its ends.
                if yb - ya > xb - xa:
                    ya, yb = ya + (yb - ya) // 3, yb - (yb - ya) // 3
                else:
                    xa, xb = xa + (xb - xa) // 3, xb - (xb - xa) // 3
                if float(luma[ya:yb, xa:xb].mean()) > _LIT:
                    lit += segment
            pattern = "".join(sorted(lit))
            if pattern not in _DIGIT_OF:
                return None
            digits.append(_DIGIT_OF[pattern])
        pairs = zip(digits[::2], digits[1::2], strict=True)
        hours, minutes, seconds = (10 * tens + ones for tens, ones in pairs)
        return hours * 3600 + minutes * 60 + seconds - _CLOCK_FROM_S


def _seven_bars(x0: int, y0: int, x1: int, y1: int, stroke: int) -> dict[str, Bar]:
    mid = (y0 + y1) // 2
    return {
        "a": (y0, y0 + stroke, x0, x1),
        "d": (y1 - stroke, y1, x0, x1),
        "g": (mid - stroke // 2, mid - stroke // 2 + stroke, x0, x1),
        "f": (y0, mid, x0, x0 + stroke),
        "b": (y0, mid, x1 - stroke, x1),
        "e": (mid, y1, x0, x0 + stroke),
        "c": (mid, y1, x1 - stroke, x1),
    }


def _interpolate(points: Sequence[tuple[float, float]], t: float) -> float:
    times = [point[0] for point in points]
    values = [point[1] for point in points]
    return float(np.interp(t, times, values))


def write_video(
    scene: Scene,
    path: Path,
    *,
    keyframe_s: float = 2.0,
    crf: int = 23,
    maxrate_kbit: int | None = None,
) -> Path:
    """Encode the scene as H.264 in MP4 with a keyframe every `keyframe_s`; blocking.
    `maxrate_kbit` caps the bitrate as a camera does (noise would otherwise take all it can)."""
    # A copy: its noise starts from the seed, whatever was rendered with the scene before.
    scene = dataclasses.replace(scene)
    gop = max(1, round(keyframe_s * scene.fps))
    planes = np.full((scene.height * 3 // 2, scene.width), 128, dtype=np.uint8)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=scene.fps)
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, scene.fps)
        stream.codec_context.gop_size = gop
        # A fixed interval, as cameras send: no extra keyframes at scene cuts.
        stream.options = {
            "preset": "ultrafast",
            "crf": str(crf),
            "keyint": str(gop),
            "min-keyint": str(gop),
            "scenecut": "0",
        }
        if maxrate_kbit is not None:
            stream.options |= {"maxrate": f"{maxrate_kbit}k", "bufsize": f"{2 * maxrate_kbit}k"}
        for index, (_, luma) in enumerate(scene.frames()):
            planes[: scene.height] = luma
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            frame.time_base = Fraction(1, scene.fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
