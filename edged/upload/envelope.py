"""Tolerant parsing of the security API's answers and callbacks, whose envelope varies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edged.ledger.results import Tokens
from edged.printable import without_surrogates

SUCCESS_CODES = frozenset({"0", "0000", "200"})
#: A callback's `status` that means success (the caption page documents 0; -1 is failure).
SUCCESS_STATUSES = SUCCESS_CODES | {"success", "ok"}
#: Longest code, message and id kept from an answer: anything longer is not one.
CODE_LIMIT = 32
MSG_LIMIT = 500
ID_LIMIT = 200
#: More tokens than any one clip's analysis uses: a count past it is not believed (and could
#: overflow the ledger's sums).
MAX_TOKENS = 2**31


@dataclass(frozen=True, slots=True)
class Envelope:
    ok: bool
    code: str | None
    msg: str
    task_id: str | None
    text: str | None
    tokens: Tokens = field(default_factory=Tokens)


def parse_envelope(body: Any) -> Envelope:
    """Read any of the envelope shapes API.md lists; never raises on odd shapes.

    Success is `code` 0/"0"/"0000"/200, or without a code a success `status` (the caption
    callback's 0) or `success: true`; an error code wins over `success: true`, and an
    explicit failure (`failed: true`, `success: false`, a `status` such as -1) over a success
    code. Strings are cleaned of lone surrogates and numbers
    of non-finite values, so whatever is kept can be stored."""
    if not isinstance(body, dict):
        return Envelope(False, None, f"answer is not a JSON object: {_clip(body)}", None, None)
    code_text = _code_text(body.get("code"))
    status_text = _code_text(body.get("status"))
    code_ok = None if code_text is None else code_text in SUCCESS_CODES
    status_ok = None if status_text is None else status_text.lower() in SUCCESS_STATUSES
    if code_ok is not None:  # a code says most, and an error code wins over `success: true`
        ok = code_ok
    elif status_ok is not None:
        ok = status_ok
    else:
        ok = body.get("success") is True
    if status_ok is False:  # {"code": "0000", "status": -1}: the analysis failed
        ok = False
        if code_ok is not False:  # an error code says more than the bare -1
            code_text = status_text
    if code_text is None:
        code_text = status_text
    if body.get("failed") is True or body.get("success") is False:
        ok = False
    msg = _text(_first_text(body.get("msg"), body.get("message")), MSG_LIMIT)
    data = _mapping(body.get("data"))
    inner_value = data.get("data")
    inner = _mapping(inner_value)
    if data.get("success") is False or inner.get("success") is False:
        ok = False
    task_id = _first_str(
        data.get("task_id"), body.get("task_id"), data.get("taskId"), body.get("taskId")
    )
    text = _first_str(
        inner.get("text"),
        inner_value if isinstance(inner_value, str) else None,
        data.get("text"),
        body.get("text"),
        limit=None,
    )
    tokens_raw = next(
        (
            t
            for t in (data.get("token"), body.get("token"), inner.get("token"))
            if isinstance(t, dict)
        ),
        None,
    )
    tokens = _tokens(tokens_raw) if tokens_raw is not None else Tokens()
    return Envelope(ok, code_text, msg, task_id, text, tokens)


def _first_text(*values: Any) -> str:
    """The first non-empty message; a message that is not text is shown as JSON would be."""
    for value in values:
        if isinstance(value, str) and value:
            return value
        if value not in (None, "", [], {}):
            return _clip(value)
    return ""


def _code_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    text = str(value).strip()
    return _text(text, CODE_LIMIT) or None


def _text(value: str, limit: int | None) -> str:
    value = without_surrogates(value)
    return value if limit is None else value[:limit]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_str(*values: Any, limit: int | None = ID_LIMIT) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return _text(value, limit)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _tokens(raw: dict[str, Any]) -> Tokens:
    def number(key: str) -> int | None:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value) or not 0 <= value < MAX_TOKENS:
            return None  # NaN, 1e999, a negative or absurd count: not a usage figure
        return int(value)

    return Tokens(number("input"), number("output"), number("total"))


def _clip(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
