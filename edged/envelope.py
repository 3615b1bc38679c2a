"""Tolerant parsing of the security API's answers and callbacks, whose envelope varies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUCCESS_CODES = frozenset({"0", "0000", "200"})


@dataclass(frozen=True, slots=True)
class Envelope:
    ok: bool
    code: str | None
    msg: str
    task_id: str | None
    text: str | None
    tokens: dict[str, int | None] = field(default_factory=dict)


def parse_envelope(body: Any) -> Envelope:
    """Read any of the envelope shapes API.md lists; never raises on odd shapes."""
    if not isinstance(body, dict):
        return Envelope(False, None, f"answer is not a JSON object: {_clip(body)}", None, None)
    code = body.get("code")
    code_text = None if code is None else str(code).strip()
    ok = body.get("success") is True or code_text in SUCCESS_CODES
    if body.get("failed") is True or body.get("success") is False:
        ok = False
    msg = str(body.get("msg") or body.get("message") or "")
    data = _mapping(body.get("data"))
    inner = _mapping(data.get("data"))
    task_id = _first_str(
        data.get("task_id"), body.get("task_id"), data.get("taskId"), body.get("taskId")
    )
    text = _first_str(inner.get("text"), data.get("text"), body.get("text"))
    tokens_raw = data.get("token") if isinstance(data.get("token"), dict) else body.get("token")
    tokens = _tokens(tokens_raw) if isinstance(tokens_raw, dict) else {}
    return Envelope(ok, code_text, msg, task_id, text, tokens)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _tokens(raw: dict[str, Any]) -> dict[str, int | None]:
    def number(key: str) -> int | None:
        value = raw.get(key)
        return (
            int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    return {"input": number("input"), "output": number("output"), "total": number("total")}


def _clip(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
