"""Value types of config fields: durations, sizes, and the checks of single values.

Durations ("90s", "1h30m") are stored as float seconds and sizes ("20GB", "512KiB") as int
bytes; both print back in the human form, so that `edged check-config` output loads again.
The other types here (URLs, host:port, names, files, time zones) each check one value and
raise ValueError with the message the user sees.
"""

from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, SecretStr, ValidationInfo

from edged.config.problems import redact_url
from edged.names import did_you_mean

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
_HOSTNAME = re.compile(r"[A-Za-z0-9_.-]+")
_CAMERA_NAME = re.compile(r"[A-Za-z0-9_.-]+")
POLL_DEFAULT_S = 10.0  # what `poll: true` means


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


def _duration(value: object) -> object:
    # Let pydantic report non-scalar input in its own words; parse the rest here.
    return parse_duration(value) if isinstance(value, str | int | float) else value


def _size(value: object) -> object:
    return parse_size(value) if isinstance(value, str | int | float) else value


#: A duration field: float seconds in Python, "5m"-style in JSON/YAML output.
Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]

#: A size field: int bytes in Python, "20GB"-style in JSON/YAML output.
Size = Annotated[
    int,
    BeforeValidator(_size),
    PlainSerializer(format_size, return_type=str, when_used="json"),
]


def split_host_port(listen: str) -> tuple[str, int]:
    """'0.0.0.0:8080' -> ('0.0.0.0', 8080); '[::]:8080' -> ('::', 8080)."""
    host, sep, port = listen.rpartition(":")
    bad = ValueError(f"expected host:port, e.g. 0.0.0.0:8080 or [::]:8080, got {listen!r}")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise bad
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
    elif not _HOSTNAME.fullmatch(host):
        raise bad
    return host, int(port)


def _host_port(value: str) -> str:
    split_host_port(value)
    return value


def _url(value: str, schemes: tuple[str, ...], wanted: str) -> str:
    try:
        parts = urlsplit(value)
        ok = parts.scheme.lower() in schemes and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expected an {wanted} URL, got {redact_url(value)!r}")
    return value


def _http_url(value: str) -> str:
    # Stored without a trailing slash so that paths can be appended with "/".
    return _url(value, ("http", "https"), "http:// or https://").rstrip("/")


def _rtsp_url(value: str) -> str:
    return _url(value, ("rtsp", "rtsps"), "rtsp:// or rtsps://")


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _secret_not_empty(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


def _number_as_text(value: object) -> object:
    # A numeric password or key in YAML arrives as a number; it was meant as text.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _resolve(value: Path, info: ValidationInfo) -> Path:
    # Relative paths are relative to the config file, not to wherever edged was started.
    base = Path((info.context or {}).get("base_dir") or Path.cwd())
    return base / value.expanduser()


def _image(path: Path) -> Path:
    kind = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"expected a .jpg, .jpeg or .png image, got {path.name!r}")
    if path.exists() and not path.is_file():
        raise ValueError(f"not a file: {path}")
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except FileNotFoundError:
        raise ValueError(f"image file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc.strerror or exc}") from None
    # The image is served with the content type its suffix implies; the bytes must agree.
    magic = b"\xff\xd8\xff" if kind == "JPEG" else b"\x89PNG\r\n\x1a\n"
    if not head.startswith(magic):
        raise ValueError(f"{path} is not a {kind} image (its content does not match)")
    return path


def _camera_name(value: str) -> str:
    # Camera names end up in file names, metric labels and MQTT topics.
    if not _CAMERA_NAME.fullmatch(value):
        raise ValueError(f"use only letters, digits, '_', '.' and '-' in names, got {value!r}")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(value, sorted(available_timezones()))
        message = f"unknown time zone {value!r} (use a name like 'Europe/Berlin'){hint}"
        raise ValueError(message) from None
    return value


def _poll(value: object) -> object:
    text = value.strip().lower() if isinstance(value, str) else value
    if text is True or text == "true":
        return POLL_DEFAULT_S
    if text is False or text is None or text == "false":
        return None
    interval = _duration(value)
    if isinstance(interval, float) and interval <= 0:
        raise ValueError("poll interval must be more than 0 (or false for no polling)")
    return interval


def _since(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value != "start":
        try:
            parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"expected 'start' or a duration; {exc}") from None
    return value


def _argv(value: object) -> object:
    if isinstance(value, str):
        raise ValueError('expected a list, e.g. ["/usr/local/bin/notify", "{person}"]')
    if isinstance(value, list | tuple) and not value:
        raise ValueError("must name at least the program to run")
    return value


def _effort(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip() if isinstance(value, str | int) else None
    if isinstance(value, bool) or text not in {str(n) for n in range(1, 11)}:
        raise ValueError(f'expected "1" to "10", got {value!r}')
    return text


Text = Annotated[str, AfterValidator(_not_empty)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
RtspUrl = Annotated[str, AfterValidator(_rtsp_url)]
HostPort = Annotated[str, AfterValidator(_host_port)]
Secret = Annotated[SecretStr, BeforeValidator(_number_as_text), AfterValidator(_secret_not_empty)]
Timeout = Annotated[Duration, AfterValidator(_positive)]
ConfigPath = Annotated[Path, AfterValidator(_resolve)]
ImagePath = Annotated[Path, AfterValidator(_resolve), AfterValidator(_image)]
CameraName = Annotated[str, AfterValidator(_camera_name)]
Regex = Annotated[str, AfterValidator(_regex)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
#: `true` is every 10 s, `false` or absent is no polling, a duration is that interval.
PollInterval = Annotated[Duration | None, BeforeValidator(_poll)]
#: "start" (only files that appear from now on) or a duration to look back on first start.
Since = Annotated[str, BeforeValidator(_since)]
Argv = Annotated[tuple[str, ...], BeforeValidator(_argv)]
ReasoningEffort = Annotated[str | None, BeforeValidator(_effort)]
