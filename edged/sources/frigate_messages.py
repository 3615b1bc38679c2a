"""Frigate's `<topic_prefix>/reviews` messages, read as hostile input.

Frigate publishes one message per change of a review item (`new`, `update`, `end`), with the
item `before` and `after` the change (docs/docs/integrations/mqtt.md in Frigate). Anyone who
may publish on the broker can send anything there, so a message is read only if it has that
shape: a JSON object under 64 KiB, a known type, an `after` with a short id and camera name,
finite times within a day of edged's clock (an end not before the start), and at most 64
short labels. Anything else is
refused with the reason, and changes nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edged.ledger.reviews import Review

MAX_MESSAGE_BYTES = 64 * 1024
#: A review's times must be this close to edged's clock: a forged item far in the past or
#: future would judge recordings it has nothing to do with.
MAX_SKEW_S = 86400.0
MAX_NAME = 128
MAX_LABELS = 64
TYPES = frozenset({"new", "update", "end"})


class ReviewMessageError(ValueError):
    """A message on the reviews topic that is not a review item; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise ReviewMessageError(f"not a number JSON allows: {name}")


def _name(value: object, key: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or not value.isprintable():
        raise ReviewMessageError(f"{key}: expected a short printable name, got {value!r:.80}")
    return value


def _time(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReviewMessageError(f"{key}: expected a time in epoch seconds, got {value!r:.80}")
    return float(value)


def parse_review(payload: bytes, now: float) -> Review:
    """The review item a message describes, as it is after the change."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ReviewMessageError(f"{len(payload)} bytes, more than a review item takes")
    try:
        message = json.loads(payload, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ReviewMessageError):
            raise
        raise ReviewMessageError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ReviewMessageError("not a JSON object")
    kind = message.get("type")
    if kind not in TYPES:
        raise ReviewMessageError(f"type: expected new, update or end, got {kind!r:.80}")
    after = message.get("after")
    if not isinstance(after, dict):
        raise ReviewMessageError("after: expected the review item")
    start = _time(after.get("start_time"), "after.start_time")
    end_value = after.get("end_time")
    end = None if end_value is None else _time(end_value, "after.end_time")
    if kind == "end" and end is None:
        raise ReviewMessageError("after.end_time: an end message without an end time")
    if end is not None and end < start:
        raise ReviewMessageError("after.end_time: before its start_time")
    for key, moment in (("after.start_time", start), ("after.end_time", end)):
        if moment is not None and abs(moment - now) > MAX_SKEW_S:
            raise ReviewMessageError(f"{key}: more than a day from this box's clock")
    data = after.get("data")
    objects = data.get("objects", []) if isinstance(data, dict) else None
    if not isinstance(objects, list) or len(objects) > MAX_LABELS:
        raise ReviewMessageError(f"after.data.objects: expected a list of at most {MAX_LABELS}")
    return Review(
        id=_name(after.get("id"), "after.id"),
        camera=_name(after.get("camera"), "after.camera"),
        start_at=start,
        end_at=end,
        severity=_name(after.get("severity"), "after.severity"),
        objects=tuple(_name(label, "after.data.objects[]") for label in objects),
    )
