"""Zones and masks: polygons in relative 0..1 coordinates, turned into pixel masks at any size.

The promise: a `Polygon` exists only if it is valid (at least 3 points, each a pair of finite
numbers within 0..1), and every refusal names the offending point by its path (`zones[1][2]`).
Coordinates are relative so that a zone drawn once survives a change of resolution or a switch
to a sub-stream; `Region` rasterises zones minus masks at the size the detector works at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BoolMask = npt.NDArray[np.bool_]


class ActivityError(ValueError):
    """A zone, mask or setting of the activity detector is not usable; the message says why."""


@dataclass(frozen=True)
class Polygon:
    """A closed polygon; `points` are (x, y) with x to the right, y down, both in 0..1."""

    points: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, raw: object, *, where: str = "polygon") -> Polygon:
        """Validate `raw` (a sequence of [x, y] pairs, as YAML gives them) into a Polygon."""
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise ActivityError(f"{where}: expected a list of [x, y] points, got {raw!r}")
        if len(raw) < 3:
            raise ActivityError(f"{where}: a polygon needs at least 3 points, got {len(raw)}")
        points = tuple(_point(item, f"{where}[{index}]") for index, item in enumerate(raw))
        if _area(points) <= 0.0:
            raise ActivityError(f"{where}: the points enclose no area (all on one line?)")
        return cls(points)

    def mask(self, width: int, height: int) -> BoolMask:
        """The pixels whose centres lie inside (even-odd rule), as a (height, width) array."""
        if width < 1 or height < 1:
            raise ActivityError(f"cannot rasterise at {width}x{height}")
        xs = (np.arange(width, dtype=np.float64) + 0.5) / width
        ys = (np.arange(height, dtype=np.float64) + 0.5) / height
        px = xs[np.newaxis, :]
        py = ys[:, np.newaxis]
        inside = np.zeros((height, width), dtype=np.bool_)
        count = len(self.points)
        # One vectorised crossing test per edge: cheap, and done once per resolution.
        for index in range(count):
            x0, y0 = self.points[index]
            x1, y1 = self.points[(index + 1) % count]
            if y0 == y1:
                continue
            spans = (y0 > py) != (y1 > py)
            x_cross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
            inside ^= spans & (px < x_cross)
        return inside


def _point(item: object, where: str) -> tuple[float, float]:
    if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 2:
        raise ActivityError(f"{where}: expected a point [x, y], got {item!r}")
    x, y = (_coordinate(value, f"{where}.{axis}") for value, axis in zip(item, "xy", strict=True))
    return (x, y)


def _coordinate(value: object, where: str) -> float:
    # bool is an int to Python, but `true` in a zone is a typo, not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ActivityError(f"{where}: expected a number in 0..1, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ActivityError(f"{where}: expected a finite number in 0..1, got {value!r}")
    if not 0.0 <= number <= 1.0:
        raise ActivityError(
            f"{where}: {number:g} is outside 0..1 (coordinates are fractions of the frame)"
        )
    return number


def _area(points: Sequence[tuple[float, float]]) -> float:
    twice = 0.0
    for index, (x0, y0) in enumerate(points):
        x1, y1 = points[(index + 1) % len(points)]
        twice += x0 * y1 - x1 * y0
    return abs(twice) / 2.0


@dataclass(frozen=True)
class Region:
    """Zones minus masks at one resolution: what the detector looks at, and per zone where.

    With no zone the whole frame is one zone. `analysed` is the union of the zones, masks removed;
    brightness and noise are estimated over it only, so a masked flicker cannot move them.
    """

    width: int
    height: int
    zones: tuple[BoolMask, ...]
    analysed: BoolMask

    @classmethod
    def build(
        cls,
        width: int,
        height: int,
        zones: Sequence[Polygon] = (),
        masks: Sequence[Polygon] = (),
    ) -> Region:
        masked = np.zeros((height, width), dtype=np.bool_)
        for polygon in masks:
            masked |= polygon.mask(width, height)
        if masks:
            # One pixel more all round: scaling down blends a masked spot into its neighbours.
            grown = np.pad(masked, 1)
            masked = np.logical_or.reduce(
                [grown[dy : dy + height, dx : dx + width] for dy in (0, 1, 2) for dx in (0, 1, 2)]
            )
        drawn = [polygon.mask(width, height) for polygon in zones] or [
            np.ones((height, width), dtype=np.bool_)
        ]
        kept = []
        for index, zone in enumerate(drawn):
            zone = zone & ~masked
            if not zone.any():
                what = f"zones[{index}]" if zones else "the frame"
                raise ActivityError(
                    f"{what}: no pixel is left at {width}x{height} once masks are removed"
                )
            kept.append(zone)
        analysed = np.logical_or.reduce(kept)
        return cls(width, height, tuple(kept), analysed)
