"""A camera's activity gate (`upload: activity`): its zones and masks (polygons in relative
0..1 coordinates, so they survive a change of resolution), its sensitivity, the smallest
share of a zone that counts (`min_area`, a fraction or a percentage such as "0.05%"), and
how far before and after the activity the neighbouring clips are sent too (`pre_roll`,
`post_roll`), and what of a clip is decoded (`decode`: its keyframes, or every frame and
`sample_fps` of them examined, for cameras that send a keyframe only every few seconds).

Every value is checked here, with the detector's own rules (edged/activity), so a zone that
cannot be used is a config error with its key path, not a fault at the first clip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from edged.activity import ActivityError, Decode, Polygon, Settings
from edged.config.base import Section
from edged.config.fields import Duration, RtspUrl
from edged.config.problems import Problem

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
    #: Keyframes (decoded alone, cheap) or every frame, for a camera whose keyframes come
    #: every 4-10 s: a walk of 3 s could fall between two of them. Every frame costs about
    #: five times the CPU (bench/activity_day.py), and an RTSP camera is then examined from
    #: its files, not as it records.
    decode: Decode = Decode.KEYFRAMES
    #: With decode: all, how many frames a second are examined (the rest are only decoded).
    sample_fps: Annotated[float, Field(gt=0.0, le=30.0)] = 2.0

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems = super().prepare(data, context)
        decode = data.get("decode", "keyframes")
        if data.get("sample_fps") is not None and decode in ("keyframes", Decode.KEYFRAMES):
            # Keyframes are all examined: a rate there would be silently ignored.
            problems.append((("sample_fps",), "only used with decode: all"))
        return problems

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.decode is Decode.KEYFRAMES and isinstance(data, dict):
            del data["sample_fps"]  # refused without decode: all, so written out only with it
        return data

    @property
    def every_frame(self) -> bool:
        """Every frame decoded: examined from the clip's file (an RTSP camera's live
        examination decodes keyframes only)."""
        return self.decode is Decode.ALL

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
