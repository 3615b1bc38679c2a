"""The cameras: an NVR recording folder (`FolderCamera`) or an RTSP stream (`RtspCamera`),
each with the cost guardrails of either kind (upload hours, a daily `BudgetConfig`).

A `cameras:` entry is validated as a `CameraConfig`, which knows the keys of both kinds, so
that a key of the other kind is reported as such ("only for rtsp cameras"); the config then
holds each camera as its kind (`Camera`), with the keys of that kind only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetPydanticSchema
from pydantic_core import core_schema
from pydantic_core.core_schema import SerializationInfo

from edged.config.activity import ActivityConfig
from edged.config.base import Section
from edged.config.fields import (
    CameraName,
    ConfigPath,
    PollInterval,
    Regex,
    RtspUrl,
    Since,
    Text,
    Timeout,
    TimeZone,
)
from edged.config.frigate import FrigateGateConfig
from edged.config.problems import Problem
from edged.config.units import Duration, Size, parse_duration
from edged.nvr.presets import PRESETS, PathTemplate
from edged.schedule import Budget, HourRange


def _hour_range(value: str) -> str:
    HourRange.parse(value)  # raises ValueError with the accepted form
    return value


HoursText = Annotated[str, AfterValidator(_hour_range)]


class BudgetConfig(Section):
    """A daily limit on what is uploaded (UTC days); any of the three, or several."""

    clips: Annotated[int, Field(ge=0)] | None = None
    minutes: Annotated[float, Field(ge=0)] | None = None
    bytes: Size | None = None

    def budget(self) -> Budget:
        return Budget(self.clips, self.minutes, self.bytes)


def _safe_camera_name(value: str) -> str:
    # A camera name is a folder of clips/ and snapshots/ and an argument of command sinks:
    # `..` would lead out of them, `-rf` would read as an option.
    if value.startswith((".", "-")):
        raise ValueError(
            f"a camera name may not start with '.' or '-' (it names folders and is passed to"
            f" commands), got {value!r}"
        )
    return value


SafeCameraName = Annotated[CameraName, AfterValidator(_safe_camera_name)]
Preset = Literal["frigate", "zoneminder", "blueiris", "synology", "custom"]
#: What of a camera is uploaded: every clip; only clips with activity; or (a Frigate folder)
#: only recordings around Frigate's review items. The others are kept as skipped_idle.
UploadMode = Literal["all", "activity", "frigate"]


class _CameraBase(Section):
    """What both kinds of camera have: a name, and the cost guardrails (hours when clips are
    uploaded at all, and a daily budget)."""

    name: SafeCameraName
    schedule: tuple[HoursText, ...] = ()
    budget: BudgetConfig | None = None
    upload: UploadMode = "all"
    activity: ActivityConfig | None = None

    @property
    def gated(self) -> bool:
        """Its clips are examined (for activity, or against Frigate's reviews) before they
        are queued."""
        return self.upload != "all"


class FolderCamera(_CameraBase):
    """An NVR recording folder (`folder:`), and how its recordings are found and named."""

    folder: ConfigPath
    #: None: the video extensions of edged/sources/recordings.py (VIDEO_EXTENSIONS).
    pattern: Text | None = None
    ignore: tuple[str, ...] = ("*.part", "*.tmp", "incomplete.*", ".*")
    preset: Preset | None = None
    path_regex: Regex | None = None
    timezone: TimeZone | None = None
    poll: PollInterval = None
    settle: Duration = 5.0
    since: Since = "start"
    cameras: tuple[str, ...] | None = None
    frigate: FrigateGateConfig | None = None

    @property
    def since_s(self) -> float | None:
        """How far back the first scan looks, in seconds; None for "start" (only new files)."""
        return None if self.since == "start" else parse_duration(self.since)

    def path_template(self) -> PathTemplate | None:
        """How camera name and start time are read from a path (None: no preset)."""
        if self.preset is None:
            return None
        return PathTemplate.create(
            self.preset,
            timezone=self.timezone,
            path_regex=self.path_regex,
            default_camera=self.name,
        )


class RtspCamera(_CameraBase):
    """An RTSP camera (`rtsp:`), recorded by edged in clips of clip_seconds."""

    rtsp: RtspUrl
    clip_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    stall_timeout: Timeout = 10.0
    audio: Literal["copy", "drop"] = "copy"


# Keys that mean something for one kind of camera only, in the order of their fields.
_COMMON_KEYS = set(_CameraBase.model_fields)
_FOLDER_KEYS = tuple(k for k in FolderCamera.model_fields if k not in _COMMON_KEYS | {"folder"})
_RTSP_KEYS = tuple(k for k in RtspCamera.model_fields if k not in _COMMON_KEYS | {"rtsp"})


class CameraConfig(Section):
    """A `cameras:` entry as written: an RTSP camera (rtsp) or an NVR recording folder
    (folder), and the options of its kind. Validated with every key of both kinds, so that a
    key of the other kind is reported as such; the config then holds it as a `FolderCamera`
    or an `RtspCamera` (`Camera`)."""

    name: SafeCameraName
    rtsp: RtspUrl | None = None
    folder: ConfigPath | None = None
    # Folder cameras.
    pattern: Text | None = None
    ignore: tuple[str, ...] = ("*.part", "*.tmp", "incomplete.*", ".*")
    preset: Preset | None = None
    path_regex: Regex | None = None
    timezone: TimeZone | None = None
    poll: PollInterval = None
    settle: Duration = 5.0
    since: Since = "start"
    cameras: tuple[str, ...] | None = None
    frigate: FrigateGateConfig | None = None
    # RTSP cameras.
    clip_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    stall_timeout: Timeout = 10.0
    # Cost guardrails, either kind: hours when clips are uploaded at all, and a daily budget.
    schedule: tuple[HoursText, ...] = ()
    budget: BudgetConfig | None = None
    # What is uploaded, either kind: every clip, or only those with activity.
    upload: UploadMode = "all"
    activity: ActivityConfig | None = None
    audio: Literal["copy", "drop"] = "copy"

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        name = data.get("name")
        who = f"camera {name!r}" if isinstance(name, str) else "this camera"
        rtsp, folder = data.get("rtsp") is not None, data.get("folder") is not None
        if rtsp and folder:
            return [((), f"{who} has both rtsp and folder; give only one")]
        if not rtsp and not folder:
            return [((), f"{who} needs either rtsp (a stream URL) or folder (an NVR folder)")]
        kind, other, wrong = (
            ("rtsp", "folder", _FOLDER_KEYS) if rtsp else ("folder", "rtsp", _RTSP_KEYS)
        )
        given = {key for key, value in data.items() if value is not None}
        problems: list[Problem] = [
            ((key,), f"only for {other} cameras, and {who} uses {kind}")
            for key in wrong
            if key in given
        ]
        upload = data.get("upload")
        if "activity" in given and upload != "activity":
            problems.append((("activity",), "only used with upload: activity"))
        activity = data.get("activity")
        if folder and isinstance(activity, dict) and activity.get("rtsp") is not None:
            message = f"only for rtsp cameras (a sub-stream to examine), and {who} uses folder"
            problems.append((("activity", "rtsp"), message))
        if folder and "frigate" in given and upload != "frigate":
            problems.append((("frigate",), "only used with upload: frigate"))
        if upload == "frigate" and folder:
            if data.get("preset") != "frigate":
                message = "upload: frigate needs preset: frigate (Frigate's recordings folder)"
                problems.append((("upload",), message))
            if "frigate" not in given:
                message = "missing: upload: frigate needs a frigate: section (its MQTT broker)"
                problems.append((("frigate",), message))
        if upload == "frigate" and rtsp:
            message = "frigate is for a Frigate recordings folder (folder: with preset: frigate)"
            problems.append((("upload",), message))
        if folder:
            preset = data.get("preset")
            if preset == "custom" and "path_regex" not in given:
                problems.append((("path_regex",), "missing: preset custom needs a path_regex"))
            if preset != "custom" and "path_regex" in given:
                problems.append((("path_regex",), "only used with preset: custom"))
            if preset is None and "cameras" in given:
                message = "only used with a preset (one folder, many cameras)"
                problems.append((("cameras",), message))
            problem = _template_problem(data)
            if problem is not None:
                problems.append((("preset",), problem))
        return problems

    def of_its_kind(self) -> FolderCamera | RtspCamera:
        """The camera as the kind it is; its values are validated already, so they are taken
        as they are."""
        kind: type[FolderCamera | RtspCamera] = (
            RtspCamera if self.rtsp is not None else FolderCamera
        )
        values = {key: getattr(self, key) for key in kind.model_fields}
        return kind.model_construct(**values)


def _camera_schema(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """A camera is validated as a `CameraConfig` entry, then held as its kind; it is written
    out (`model_dump`) as its kind, with the keys of that kind only."""
    return core_schema.no_info_after_validator_function(
        CameraConfig.of_its_kind,
        handler.generate_schema(CameraConfig),
        serialization=core_schema.plain_serializer_function_ser_schema(_dump_camera, info_arg=True),
    )


def _dump_camera(camera: FolderCamera | RtspCamera, info: SerializationInfo) -> Any:
    data = camera.model_dump(mode=info.mode, by_alias=bool(info.by_alias))
    return {key: data[key] for key in CameraConfig.model_fields if key in data}  # as written


#: A configured camera: an NVR folder or an RTSP stream, told apart by which key it has.
Camera = Annotated[FolderCamera | RtspCamera, GetPydanticSchema(_camera_schema)]


def _template_problem(data: Mapping[str, Any]) -> str | None:
    """What the preset itself objects to (e.g. frigate is always UTC, a custom regex without
    time groups that make sense). Values that are invalid on their own are reported at their
    own keys, so they are left out here."""
    preset = data.get("preset")
    if preset not in PRESETS:
        return None
    timezone, path_regex = data.get("timezone"), data.get("path_regex")
    if preset == "custom" and not isinstance(path_regex, str):
        return None  # reported at path_regex
    try:
        ZoneInfo(timezone) if isinstance(timezone, str) else None
    except (ValueError, ZoneInfoNotFoundError):
        timezone = None
    try:
        re.compile(path_regex) if isinstance(path_regex, str) else None
    except re.error:
        return None
    try:
        PathTemplate.create(
            preset,
            timezone=timezone if isinstance(timezone, str) else None,
            path_regex=path_regex if isinstance(path_regex, str) else None,
            default_camera=data.get("name") if isinstance(data.get("name"), str) else None,
        )
    except ValueError as exc:
        return str(exc)
    return None
