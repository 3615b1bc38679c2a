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
is returned in UTC. Around DST changes a wall-clock time is read with fold=0: an ambiguous time
(fall back) is the first of the two instants, and a time in the spring-forward gap, which no
clock showed, is read with the offset in force before the gap (02:30 becomes 03:30 after it).
An epoch before 2000 is taken as garbage (a camera whose clock was never set).

Camera names must be edged camera names, `[A-Za-z0-9_.-]+`: accents are dropped and every run
of other characters becomes `_` ("Front Door" -> "Front_Door", "Caméra 2" -> "Camera_2").
Two NVR names can thus map to the same edged name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as FixedOffset
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edged.names import did_you_mean

PRESETS: frozenset[str] = frozenset({"frigate", "zoneminder", "blueiris", "synology", "custom"})

_TIME_GROUPS = ("Y", "y", "m", "d", "H", "I", "p", "M", "S", "f", "z", "epoch")
_GROUP_NAMES = ("camera", *_TIME_GROUPS)
_EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_OFFSET = re.compile(r"([+-])(\d\d)(?::?(\d\d))?")

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
                return PathInfo(camera, _start(groups, self.zone))
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
    problem = _time_groups_problem(names)
    if problem:
        raise ValueError(f"path_regex: {problem}")
    return pattern


def _time_groups_problem(names: set[str]) -> str | None:
    """Why the time groups of a custom regex cannot give a start, or None if they can."""
    has = names.__contains__
    if has("Y") and has("y"):
        return "use one year group, Y (4 digits) or y (2 digits), not both"
    if has("H") and has("I"):
        return "use H (24-hour) or I with p (12-hour), not both"
    if has("I") != has("p"):
        return "I (12-hour) and p (AM/PM) go together"
    missing = [g for g in ("Y|y", "m", "d") if not any(has(n) for n in g.split("|"))]
    if missing and len(missing) < 3:
        return f"a date needs Y (or y), m and d; missing {', '.join(missing).replace('|', ' or ')}"
    if missing and names & {"H", "I", "M", "S", "f", "z"}:
        return "a time of day needs a date: Y (or y), m and d; or use epoch"
    for part, needs in (("M", "H or I"), ("S", "M"), ("f", "S"), ("z", "H or I")):
        if has(part) and not any(has(n) for n in needs.split(" or ")):
            return f"{part} needs {needs}"
    return None


def _start(groups: Mapping[str, str | None], zone: tzinfo | None) -> datetime | None:
    """The start in UTC from the groups a path matched; ValueError when a part is garbage."""
    epoch_error: ValueError | None = None
    epoch = groups.get("epoch")
    if epoch is not None:
        try:
            return _from_epoch(epoch)
        except ValueError as exc:  # fall back on the date and time, when the path has them
            epoch_error = exc
    start = _from_parts(groups, zone)
    if start is None and epoch_error is not None:
        raise epoch_error
    return start


def _from_epoch(text: str) -> datetime:
    seconds = _number(text)
    # 13-digit values are milliseconds: seconds will not need 12 digits for 30000 years.
    unit = timedelta(milliseconds=1) if len(text) > 11 else timedelta(seconds=1)
    try:
        start = datetime(1970, 1, 1, tzinfo=UTC) + seconds * unit
    except OverflowError:
        raise ValueError(f"epoch out of range: {text}") from None
    if start < _EPOCH_FLOOR:
        raise ValueError(f"epoch before 2000: {text}")
    return start


def _from_parts(groups: Mapping[str, str | None], zone: tzinfo | None) -> datetime | None:
    year, two_digit = (groups.get("Y"), False) if groups.get("y") is None else (groups["y"], True)
    month, day = groups.get("m"), groups.get("d")
    if year is None or month is None or day is None:
        return None
    date = datetime(_number(year) + (2000 if two_digit else 0), _number(month), _number(day))
    hour = _hour(groups)
    if hour is None:
        return None
    minute, second, fraction = groups.get("M"), groups.get("S"), groups.get("f")
    local = date.replace(
        hour=hour,
        minute=_number(minute) if minute else 0,
        second=_number(second) if second else 0,
        microsecond=_number(fraction[:6].ljust(6, "0")) if fraction else 0,
    )
    offset = groups.get("z")
    if offset is not None:
        return local.replace(tzinfo=_offset(offset)).astimezone(UTC)
    return _local_to_utc(local, zone)


def _hour(groups: Mapping[str, str | None]) -> int | None:
    if groups.get("H") is not None:
        return _number(groups["H"] or "")
    twelve, half = groups.get("I"), (groups.get("p") or "").upper()
    if twelve is None:
        return None
    hour = _number(twelve)
    if half not in ("AM", "PM") or not 1 <= hour <= 12:
        raise ValueError(f"not a 12-hour time: {twelve} {half}")
    return hour % 12 + (12 if half == "PM" else 0)


def _offset(text: str) -> FixedOffset:
    if text in ("Z", "z"):
        return UTC
    found = _OFFSET.fullmatch(text)
    if found is None:
        raise ValueError(f"not a UTC offset: {text!r}")
    sign, hours, minutes = found.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    return FixedOffset(-delta if sign == "-" else delta)  # ValueError beyond ±24h


def _local_to_utc(local: datetime, zone: tzinfo | None) -> datetime:
    """A wall-clock time in zone (None: the machine's zone) in UTC, read with fold=0."""
    if zone is not None:
        return local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # The C library's local time: DST-aware, unlike a fixed offset taken from now.
    first = local.replace(fold=0).astimezone(UTC)
    if first.astimezone().replace(tzinfo=None) == local:
        return first
    # A time in the spring-forward gap: libc's fold=1 is ZoneInfo's fold=0 (offset before).
    return local.replace(fold=1).astimezone(UTC)


def _number(text: str) -> int:
    """Digits only: int() would also take signs, spaces and non-ASCII digits."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a number: {text!r}")
    return int(text)
