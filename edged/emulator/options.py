"""The emulator's knobs and the records it keeps of what it received and sent.

The options stay a plain mutable dataclass so that tests can flip a field between
two requests, in process or over `POST /_emulator/options`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edged.errors import EdgedError

# Success envelope variants seen in the API documentation (see API.md).
ENVELOPES = ("code0", "code0000", "code200", "string0", "toplevel_task_id", "taskId")

# Shapes of the callback body (API.md "Callbacks"): "envelope" follows `envelope` (the
# vendor's {code, message, data, task_id}); "caption" is the v1.2 caption page's
# {status, task_id, data: {text, token}}; "mixed" picks one of them at random per callback.
CALLBACK_SHAPES = ("envelope", "caption", "mixed")

# What `callback_faults` can ask of one upload's callback; late and duplicate take a number
# ("late:40" seconds, "duplicate:2" extra copies).
CALLBACK_FAULTS = ("ok", "drop", "late", "duplicate", "malformed", "failed")


class OptionError(EdgedError, ValueError):
    """An emulator option is unknown or has a value of the wrong type or range."""


@dataclass
class EmulatorOptions:
    """How the emulator behaves; every field can change while it runs."""

    api_key: str | None = None
    callback_delay_s: float = 0.5
    latency_s: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (503,)
    fail_next: list[int] = field(default_factory=list)
    retry_after_s: float | None = 1.0
    envelope: str = "code0"
    error_envelope_rate: float = 0.0
    duplicate_callbacks: int = 0
    late_callback_s: float = 0.0
    drop_callbacks: bool = False
    callback_retries: int = 3
    callback_retry_delay_s: float = 1.0
    max_file_bytes: int = 8 * 10**9
    max_duration_s: float = 7200.0
    drop_connection_rate: float = 0.0
    text: str | None = None
    # The answer's text per uploaded file name, before `text`: many clips, each its own text.
    texts: dict[str, str] = field(default_factory=dict)
    # A whole outage: every API request is refused for `outage_s` from when it is set, with
    # `outage_statuses` one after the other in equal parts (503 for the first half, then 429).
    outage_s: float = 0.0
    outage_statuses: tuple[int, ...] = (503, 429)
    retry_after_statuses: tuple[int, ...] = (429, 503)  # the refusals that carry Retry-After
    # Scripted callbacks: one entry per acknowledged async upload, in order, in place of the
    # callback options above (see CALLBACK_FAULTS).
    callback_faults: list[str] = field(default_factory=list)
    callback_shape: str = "envelope"
    # A business refusal: every API request answered with this documented code (API.md:
    # "0402" out of credit, "0401" refused key, "9009" no permission, "0409" duplicate…)
    # for `refuse_for_s` seconds from when it is set (0: until it is cleared), inside an
    # envelope with HTTP status `refuse_status` (200, or the aligned HTTP status).
    refuse_code: str | None = None
    refuse_for_s: float = 0.0
    refuse_status: int = 200

    def __post_init__(self) -> None:
        self.validate()

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name == "outage_s":  # the outage runs from now, however the option was set
            super().__setattr__("_outage_from", time.monotonic())
        if name in ("refuse_code", "refuse_for_s"):
            super().__setattr__("_refuse_from", time.monotonic())

    def refusal(self, now: float | None = None) -> str | None:
        """The business code to refuse with at `now` (monotonic), or None."""
        if self.refuse_code is None:
            return None
        if self.refuse_for_s:
            started = float(getattr(self, "_refuse_from", 0.0))
            if (time.monotonic() if now is None else now) - started >= self.refuse_for_s:
                return None
        return self.refuse_code

    def _outage_elapsed_s(self, now: float | None) -> float:
        started = float(getattr(self, "_outage_from", 0.0))  # not a field: never in the JSON
        return (time.monotonic() if now is None else now) - started

    def outage_status(self, now: float | None = None) -> int | None:
        """The status an outage answers with at `now` (monotonic), or None outside one."""
        elapsed = self._outage_elapsed_s(now)
        if not self.outage_statuses or not 0 <= elapsed < self.outage_s:
            return None
        phase = math.floor(elapsed / self.outage_s * len(self.outage_statuses))
        return self.outage_statuses[min(phase, len(self.outage_statuses) - 1)]

    def outage_left_s(self, now: float | None = None) -> float:
        return max(0.0, self.outage_s - self._outage_elapsed_s(now))

    def validate(self) -> None:
        """Raise OptionError on values the emulator cannot act on."""
        if self.envelope not in ENVELOPES:
            raise OptionError(f"envelope: expected one of {', '.join(ENVELOPES)}")
        if self.callback_shape not in CALLBACK_SHAPES:
            raise OptionError(f"callback_shape: expected one of {', '.join(CALLBACK_SHAPES)}")
        if self.refuse_code is not None and not (
            self.refuse_code.isascii() and self.refuse_code.isdigit()
        ):
            raise OptionError('refuse_code: expected a code of digits, such as "0402"')
        if not 200 <= self.refuse_status <= 599:
            raise OptionError("refuse_status: expected an HTTP status (200..599)")
        for name in ("error_rate", "error_envelope_rate", "drop_connection_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise OptionError(f"{name}: expected a fraction between 0 and 1")
        for name in (
            "callback_delay_s",
            "latency_s",
            "late_callback_s",
            "callback_retry_delay_s",
            "duplicate_callbacks",
            "callback_retries",
            "max_file_bytes",
            "max_duration_s",
            "outage_s",
            "refuse_for_s",
        ):
            if getattr(self, name) < 0:
                raise OptionError(f"{name}: must not be negative")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise OptionError("retry_after_s: must not be negative")
        for name in ("error_statuses", "fail_next", "outage_statuses", "retry_after_statuses"):
            if any(not 400 <= status <= 599 for status in getattr(self, name)):
                raise OptionError(f"{name}: expected HTTP error statuses (400..599)")
        for entry in self.callback_faults:
            parse_callback_fault(entry)

    def to_json(self) -> dict[str, Any]:
        """The options as a JSON object, as `GET /_emulator/options` shows them."""
        data = dataclasses.asdict(self)
        for name in ("error_statuses", "outage_statuses", "retry_after_statuses"):
            data[name] = list(getattr(self, name))
        return data

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply JSON-typed changes all at once, or none of them on any error."""
        converted: dict[str, Any] = {}
        for name, value in changes.items():
            kind = _FIELD_TYPES.get(name)
            if kind is None:
                raise OptionError(f"{name}: unknown option")
            converted[name] = _CONVERTERS[kind](name, value)
        candidate = dataclasses.replace(self, **converted)  # runs validate()
        for name in converted:
            setattr(self, name, getattr(candidate, name))


def parse_callback_fault(entry: str) -> tuple[str, float]:
    """("late", 40.0) from "late:40"; the number defaults to 1 where one is taken."""
    kind, _, number = entry.partition(":")
    if kind not in CALLBACK_FAULTS:
        choices = ", ".join(CALLBACK_FAULTS)
        raise OptionError(f"callback_faults: {entry!r}: expected one of {choices}")
    if number and kind not in ("late", "duplicate"):
        raise OptionError(f"callback_faults: {entry!r}: {kind} takes no number")
    try:
        value = float(number) if number else 1.0
    except ValueError:
        raise OptionError(f"callback_faults: {entry!r}: expected a number after ':'") from None
    if not math.isfinite(value) or value < 0:
        raise OptionError(f"callback_faults: {entry!r}: expected a non-negative number")
    return kind, value


def _float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(f"{name}: expected a number")
    return float(value)


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{name}: expected an integer")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise OptionError(f"{name}: expected true or false")
    return value


def _optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise OptionError(f"{name}: expected a string or null")
    return value


def _optional_float(name: str, value: object) -> float | None:
    return None if value is None else _float(name, value)


def _str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise OptionError(f"{name}: expected a string")
    return value


def _int_list(name: str, value: object) -> list[int]:
    if not isinstance(value, list):
        raise OptionError(f"{name}: expected a list of HTTP statuses")
    return [_int(name, item) for item in value]


def _int_tuple(name: str, value: object) -> tuple[int, ...]:
    return tuple(_int_list(name, value))


def _str_dict(name: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise OptionError(f"{name}: expected an object of file names to texts")
    return {_str(name, key): _str(name, text) for key, text in value.items()}


def _str_list(name: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise OptionError(f"{name}: expected a list of strings")
    return [_str(name, item) for item in value]


# Keyed by the annotation text, which `from __future__ import annotations` keeps as a string.
_CONVERTERS: dict[str, Callable[[str, object], object]] = {
    "float": _float,
    "int": _int,
    "bool": _bool,
    "str": _str,
    "str | None": _optional_str,
    "float | None": _optional_float,
    "tuple[int, ...]": _int_tuple,
    "list[int]": _int_list,
    "list[str]": _str_list,
    "dict[str, str]": _str_dict,
}
_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(EmulatorOptions)}


@dataclass(frozen=True)
class ReceivedRequest:
    """One API request as the emulator saw it, and what it answered."""

    endpoint: str
    authorization: str | None
    req: dict[str, Any]
    file_name: str | None
    file_size: int | None
    file_sha256: str | None
    status: int  # 0 when the connection was dropped without an answer
    task_id: str | None
    received_at: float  # when it was answered (time.time())
    error: str | None = None  # the `msg` of an error envelope, if one was answered
    started_at: float = 0.0  # when it arrived (time.time())
    callback_fault: str | None = None  # the `callback_faults` entry its callback got


@dataclass(frozen=True)
class CallbackRecord:
    """One POST of a result to a callback URL (each retry and duplicate is its own record)."""

    url: str
    task_id: str
    body: dict[str, Any]
    copy: int  # 0 for the first delivery, 1.. for duplicates
    attempt: int  # 1 for the first try of this copy
    status: int | None
    error: str | None
    sent_at: float
    kind: str = "result"  # or "malformed:<what>", a body that must be refused
