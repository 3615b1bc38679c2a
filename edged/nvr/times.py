"""The start of a recording, in UTC, from the named groups its path matched.

The groups are those of a path template (`nvr.presets`): `Y` (4-digit year) or `y` (2-digit,
20yy), `m`, `d`; `H` (24-hour) or `I` with `p` (AM/PM); `M`, `S`, `f` (fraction of a second);
`z` (`Z`, `+02`, `+0200`, `+02:00`); `epoch` (seconds, or milliseconds when longer than 11
digits). The epoch wins; when it is garbage, the date and time are used. A date without an
hour gives no start (None). A field that looks right but is no date raises ValueError.

Local times (no `epoch` or `z`) are read in the template's zone, else in the machine's local
zone, DST rules included. Around DST changes a wall-clock time is read with fold=0: an
ambiguous time (fall back) is the first of the two instants, and a time in the spring-forward
gap, which no clock showed, is read with the offset in force before the gap (02:30 becomes
03:30 after it). An epoch before 2000 is taken as garbage (a camera whose clock was never set).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as FixedOffset

#: The groups of a path that say when a recording started.
TIME_GROUPS = ("Y", "y", "m", "d", "H", "I", "p", "M", "S", "f", "z", "epoch")
_EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
_OFFSET = re.compile(r"([+-])(\d\d)(?::?(\d\d))?")


def time_groups_problem(names: set[str]) -> str | None:
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


def start_of(groups: Mapping[str, str | None], zone: tzinfo | None) -> datetime | None:
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
