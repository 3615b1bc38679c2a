"""Durations and sizes in the config: read from the human form, printed back in it.

Durations ("90s", "1h30m") are stored as float seconds and sizes ("20GB", "512KiB") as int
bytes; both print back in the human form, so that `edged check-config` output loads again.
Every refusal is a ValueError with the message the user sees, naming the forms that work.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

DURATION_FORMS = (
    "use seconds (e.g. 90) or a number with a unit: 500ms, 90s, 5m, 2h, 1d, or combined like 1h30m"
)
SIZE_FORMS = (
    "use bytes (e.g. 1048576) or a number with a unit: 100B, 500MB, 1.5GB, 512KiB, 2GiB "
    "(KB, MB, GB, TB count in 1000s; KiB, MiB, GiB, TiB in 1024s)"
)

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", re.IGNORECASE)
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(i?))?b?\s*", re.IGNORECASE)
_SIZE_EXPONENT = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")


def parse_duration(value: str | int | float) -> float:
    """Seconds from a number of seconds or a string like "90s", "5m", "500ms", "1h30m"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid duration {value!r}: {DURATION_FORMS}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative; {DURATION_FORMS}")
        return float(value)
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"invalid duration {value!r}: must not be negative; {DURATION_FORMS}")
    if _NUMBER.fullmatch(text):
        return float(text)
    parts = list(_DURATION_PART.finditer(text))
    # The parts must tile the whole string, so "5 minutes" or "5m later" is refused.
    if not parts or "".join(p.group(0) for p in parts) != text:
        raise ValueError(f"invalid duration {value!r}: {DURATION_FORMS}")
    return sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2).lower()] for p in parts)


def parse_size(value: str | int | float) -> int:
    """Bytes from an int or a string like "500MB" (10^6) or "512KiB" (2^10)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid size {value!r}: {SIZE_FORMS}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value != int(value):
            raise ValueError(f"invalid size {value!r}: must be a whole number of bytes >= 0")
        return int(value)
    if value.strip().startswith("-"):
        raise ValueError(f"invalid size {value!r}: must not be negative; {SIZE_FORMS}")
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid size {value!r}: {SIZE_FORMS}")
    number, prefix, binary = match.groups()
    base = 1024 if binary else 1000
    exponent = _SIZE_EXPONENT[prefix.lower()] if prefix else 0
    size = Decimal(number) * base**exponent  # Decimal: "1.1GB" is exactly 1100000000 bytes
    if size != int(size):
        raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
    return int(size)


def format_duration(seconds: float) -> str:
    """The shortest exact unit form of a duration: 5400 -> "1h30m", 0.5 -> "500ms"."""
    if seconds != int(seconds):
        milliseconds = seconds * 1000
        if milliseconds == int(milliseconds):
            return f"{int(milliseconds)}ms"
        return f"{seconds}s"
    remaining = int(seconds)
    if remaining == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        count, remaining = divmod(remaining, int(_UNIT_SECONDS[unit]))
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def format_size(size: int) -> str:
    """The largest unit that states a size exactly: 8*10**9 -> "8GB", 2**30 -> "1GiB"."""
    for prefix in ("P", "T", "G", "M", "K"):
        exponent = _SIZE_EXPONENT[prefix.lower()]
        if size and size % 1000**exponent == 0:
            return f"{size // 1000**exponent}{prefix}B"
        if size and size % 1024**exponent == 0:
            return f"{size // 1024**exponent}{prefix}iB"
    return f"{size}B"


def duration_input(value: object) -> object:
    # Let pydantic report non-scalar input in its own words; parse the rest here.
    return parse_duration(value) if isinstance(value, str | int | float) else value


def size_input(value: object) -> object:
    return parse_size(value) if isinstance(value, str | int | float) else value


#: A duration field: float seconds in Python, "5m"-style in JSON/YAML output.
Duration = Annotated[
    float,
    BeforeValidator(duration_input),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]

#: A size field: int bytes in Python, "20GB"-style in JSON/YAML output.
Size = Annotated[
    int,
    BeforeValidator(size_input),
    PlainSerializer(format_size, return_type=str, when_used="json"),
]
