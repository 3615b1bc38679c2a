"""A camera's activity gate (`upload: activity`): its zones and masks (polygons in relative
0..1 coordinates, so they survive a change of resolution), its sensitivity, the smallest
share of a zone that counts (`min_area`, a fraction or a percentage such as "0.05%"), and
how far before and after the activity the neighbouring clips are sent too (`pre_roll`,
`post_roll`).

Every value is checked here, with the detector's own rules (edged/activity), so a zone that
cannot be used is a config error with its key path, not a fault at the first clip.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from edged.activity import ActivityError, Polygon, Settings
from edged.config.base import Section
from edged.config.fields import Duration, RtspUrl

Points = tuple[tuple[float, float], ...]


def _polygon(value: Points) -> Points:
    return Polygon.parse(value, where="points").points


def _share(value: object) -> object:
    """ "0.05%" is 0.0005; a number is taken as the fraction itself."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"expected a percentage such as 0.05%, got {value!r}") from None
    return value


def _at_least_a_minute(value: float) -> float:
    if value < 60:
        raise ValueError(f"at least 1m, so that an event holds more than one clip, got {value:g}s")
    return value


PolygonPoints = Annotated[Points, AfterValidator(_polygon)]
Share = Annotated[float, BeforeValidator(_share), Field(gt=0.0, le=1.0)]


class ActivityConfig(Section):
    """`activity:` of a camera: where to look, and how much change counts."""

    zones: tuple[PolygonPoints, ...] = ()  # none: the whole picture
    masks: tuple[PolygonPoints, ...] = ()
    sensitivity: Annotated[float, Field(ge=0.0, le=1.0)] = Settings.sensitivity
    min_area: Share = Settings.min_area
    #: Clips this close before the first active second, or after the last, are sent too:
    #: someone walking in may show below the threshold in the clip before.
    pre_roll: Duration = 5.0
    post_roll: Duration = 5.0
    #: Consecutive clips that go are joined into one upload (an event clip), up to max_event.
    events: bool = True
    max_event: Annotated[Duration, AfterValidator(_at_least_a_minute)] = 600.0
    #: RTSP cameras: a lower-resolution stream of the same camera to examine instead of the
    #: recorded stream's keyframes (never recorded).
    rtsp: RtspUrl | None = None

    def settings(self) -> Settings:
        try:
            return Settings(
                sensitivity=self.sensitivity,
                min_area=self.min_area,
                zones=tuple(Polygon(points) for points in self.zones),
                masks=tuple(Polygon(points) for points in self.masks),
            )
        except ActivityError as exc:  # checked above already; says which value if not
            raise ValueError(f"activity: {exc}") from exc
