"""Camera name and start time from the path of a recording, for NVR folders of many cameras.

`PathTemplate.match` reads a path relative to the watched folder (`/` separators); None means
the file does not fit. Built-in presets allow leading folders (the watched folder may be a parent
of the NVR's own folder).

- `frigate`: `YYYY-MM-DD/HH/<camera>/MM.SS.mp4`, in UTC (how Frigate names recordings).
- `zoneminder`: Medium storage `<monitor>/YYYY-MM-DD/<event>/<event>-video*.mp4|mkv`; the
  camera is the monitor folder (its id). The folders give the day but not the time of day, so
  the start is None and the caller takes the file's mtime minus its duration: midnight would be
  hours off. Deep storage `<monitor>/YY/MM/DD/HH/MM/SS/<event>-video*.mp4|mkv` gives the time.
- `blueiris`: `[folders/]<CAM>.YYYYMMDD_HHMMSS.mp4|mkv`; `.bvr` (not decodable) never matches.
- `synology`: `<Camera>/<YYYYMMDD>AM|PM/<Camera><YYYYMMDD>-<HHMMSS>-<epoch>.mp4`; the camera
  is the folder, the file name must start with it. The epoch wins; when it is missing or
  garbage, the local date and time in the name are used.
- `custom`: `path_regex`, matched with `fullmatch`, with these named groups:
  `camera`; `Y` (4-digit year) or `y` (2-digit, 20yy), `m`, `d`; `H` (24-hour) or `I` with
  `p` (AM/PM); `M`, `S`, `f` (fraction of a second); `z` (`Z`, `+02`, `+0200`, `+02:00`);
  `epoch` (seconds, or milliseconds when longer than 11 digits). Example:
  `(?P<camera>[^/]+)/(?P<Y>\\d{4})(?P<m>\\d\\d)(?P<d>\\d\\d)/(?P<H>\\d\\d)(?P<M>\\d\\d)(?P<S>\\d\\d)\\.mp4`.
  Without a `camera` group every file belongs to `default_camera`. A date without an hour
  gives no start (None), like ZoneMinder.

Local times (zoneminder, blueiris, synology's fallback, custom without `epoch` or `z`) are read
in `timezone` (an IANA name), else in the machine's local zone, DST rules included. Every start
is returned in UTC. How the groups become a start (DST edges, epochs) is `nvr.times`.

Camera names must be edged camera names, `[A-Za-z0-9_.-]+`: accents are dropped and every run
of other characters becomes `_` ("Front Door" -> "Front_Door", "Caméra 2" -> "Camera_2").
Two NVR names can thus map to the same edged name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edged.names import did_you_mean
from edged.nvr.times import TIME_GROUPS, start_of, time_groups_problem

PRESETS: frozenset[str] = frozenset({"frigate", "zoneminder", "blueiris", "synology", "custom"})

_GROUP_NAMES = ("camera", *TIME_GROUPS)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

_ANY_FOLDERS = r"(?:[^/]+/)*"
_VIDEO = r"\.(?i:mp4|mkv)"
_DATE = r"(?P<Y>\d{4})(?P<m>\d\d)(?P<d>\d\d)"
_TIME = r"(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)"
_DASHED_DATE = r"(?P<Y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)"
_DEEP_TIME = r"(?P<y>\d\d)/(?P<m>\d\d)/(?P<d>\d\d)/(?P<H>\d\d)/(?P<M>\d\d)/(?P<S>\d\d)"
_ZM_VIDEO = r"-video(?:[-.][^/]*)?" + _VIDEO
_BUILTIN: dict[str, tuple[str, ...]] = {
    "frigate": (
        rf"{_ANY_FOLDERS}{_DASHED_DATE}/(?P<H>\d\d)/(?P<camera>[^/]+)/(?P<M>\d\d)\.(?P<S>\d\d)\.mp4",
    ),
    "zoneminder": (
        rf"{_ANY_FOLDERS}(?P<camera>[^/]+)/{_DASHED_DATE}/(?P<event>\d+)/(?P=event){_ZM_VIDEO}",
        rf"{_ANY_FOLDERS}(?P<camera>[^/]+)/{_DEEP_TIME}/(?P<event>\d+){_ZM_VIDEO}",
    ),
    "blueiris": (rf"{_ANY_FOLDERS}(?P<camera>[^/]+)\.{_DATE}_{_TIME}{_VIDEO}",),
    # The backreference makes the file name start with the camera folder's name.
    "synology": (
        rf"{_ANY_FOLDERS}(?P<camera>[^/]+)/\d{{8}}(?:AM|PM)/(?P=camera){_DATE}-{_TIME}"
        r"(?:-(?P<epoch>[^/]*))?\.(?i:mp4)",
    ),
}


@dataclass(frozen=True, slots=True)
class PathInfo:
    """What a path says: the (sanitized) camera name and the start, in UTC, if the path has it."""

    camera: str
    start: datetime | None


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A preset with its options; build with `create`, which checks them."""

    preset: str
    patterns: tuple[re.Pattern[str], ...] = field(repr=False)
    zone: tzinfo | None  # None: the machine's local time
    default_camera: str | None = None

    @classmethod
    def create(
        cls,
        preset: str,
        *,
        timezone: str | None = None,
        path_regex: str | None = None,
        default_camera: str | None = None,
    ) -> PathTemplate:
        """The template of `preset`; ValueError with the message the user sees if it can't be."""
        if preset not in PRESETS:
            hint = did_you_mean(preset, sorted(PRESETS))
            raise ValueError(
                f"unknown preset {preset!r} (use one of {', '.join(sorted(PRESETS))}){hint}"
            )
        if preset == "custom":
            if path_regex is None:
                raise ValueError("preset custom needs a path_regex")
            patterns: tuple[re.Pattern[str], ...] = (_compile_custom(path_regex, default_camera),)
        elif path_regex is not None:
            raise ValueError(f"path_regex is only used with preset custom, not {preset}")
        else:
            patterns = tuple(re.compile(p) for p in _BUILTIN[preset])
        zone: tzinfo | None = _zone(timezone) if timezone is not None else None
        if preset == "frigate":
            if timezone is not None:
                raise ValueError("preset frigate names recordings in UTC; timezone does not apply")
            zone = UTC
        default = sanitize_camera(default_camera) if default_camera else None
        return cls(preset, patterns, zone, default or None)

    def match(self, relative_path: str) -> PathInfo | None:
        """Camera and start from a path relative to the watched folder; None if it doesn't fit."""
        parts = relative_path.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return None
        for pattern in self.patterns:
            found = pattern.fullmatch(relative_path)
            if found is None:
                continue
            groups = found.groupdict()
            camera = sanitize_camera(groups.get("camera") or "") or self.default_camera
            if not camera:
                return None
            try:
                return PathInfo(camera, start_of(groups, self.zone))
            except ValueError:  # a field that looks right but is no date (month 13, ...)
                return None
        return None


def sanitize_camera(name: str) -> str:
    """An edged camera name ([A-Za-z0-9_.-]+) from an NVR's: accents dropped, the rest `_`."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return _UNSAFE.sub("_", plain)


def camera_allowed(camera: str, allowed: Sequence[str] | None) -> bool:
    """Whether a camera passes a folder's `cameras:` filter; None lets every camera through.

    The filter may name cameras as the NVR writes them ("Front Door") or as edged does.
    """
    if allowed is None:
        return True
    return any(camera == sanitize_camera(name) for name in allowed)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown timezone {name!r} (use an IANA name such as 'Europe/Berlin')"
        raise ValueError(message) from None


def _compile_custom(path_regex: str, default_camera: str | None) -> re.Pattern[str]:
    try:
        pattern = re.compile(path_regex)
    except re.error as exc:
        raise ValueError(f"path_regex does not compile: {exc}") from None
    names = set(pattern.groupindex)
    unknown = names - set(_GROUP_NAMES)
    if unknown:
        raise ValueError(
            f"path_regex has unknown group names {', '.join(sorted(unknown))} "
            f"(use {', '.join(_GROUP_NAMES)})"
        )
    if "camera" not in names and not default_camera:
        raise ValueError("path_regex needs a named group (?P<camera>...) for the camera name")
    problem = time_groups_problem(names)
    if problem:
        raise ValueError(f"path_regex: {problem}")
    return pattern
