"""Value types of config fields: the checks of single values.

The types here (URLs, host:port, names, files, time zones, intervals, argv) each check one
value and raise ValueError with the message the user sees. Durations and sizes, which the
other types build on, are in `units`.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationInfo

from edged.config.problems import redact_url
from edged.config.units import Duration, duration_input, parse_duration
from edged.names import did_you_mean

_HOSTNAME = re.compile(r"[A-Za-z0-9_.-]+")
_CAMERA_NAME = re.compile(r"[A-Za-z0-9_.-]+")
POLL_DEFAULT_S = 10.0  # what `poll: true` means


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
    interval = duration_input(value)
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
