"""One camera's continuous scene cut into recordings, as an NVR writes them: `Footage` is the
stretch of a `Scene` from `start_s` for `seconds`, so that consecutive files show what
happened across their cuts; `Standing` is a figure that walks in and then stands still."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tests.support.activity_scene import Image, Scene, Walker


@dataclass(frozen=True)
class Standing(Walker):
    """Walks from `x0` to `x1` in `duration_s`, then stands there, still, until `leaves_s`."""

    leaves_s: float = float("inf")

    @property
    def end_s(self) -> float:
        return self.leaves_s


@dataclass(frozen=True)
class Footage(Scene):
    """The scene from `start_s` on: frame times from 0, as in the recording's file."""

    start_s: float = 0.0

    def frames(self) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
        for index in range(round(self.seconds * self.fps)):
            t = index / self.fps
            yield t, self.render(self.start_s + t)

    def _draw_walker(self, image: Image, walker: Walker, t: float) -> None:
        if isinstance(walker, Standing) and t >= walker.start_s + walker.duration_s:
            # Where the walk ended, the legs as they were then: nothing of it moves.
            walker = Walker(
                t - walker.duration_s,
                walker.duration_s,
                walker.top,
                walker.height,
                walker.level,
                walker.x0,
                walker.x1,
            )
        super()._draw_walker(image, walker, t)
