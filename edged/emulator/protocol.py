"""What the emulator says: request validation, envelope variants and the scripted analysis.

Everything here is pure, so the shapes the emulator answers with can be read in one
place and checked against API.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from yarl import URL

from edged.errors import EdgedError

MAX_PERSONS = 5
_REASONING_EFFORTS = frozenset(str(level) for level in range(1, 11))
_BOOL_FIELDS = ("thinking", "qa")
_KNOWN_FIELDS = frozenset(
    {"video_url", "user_prompt", "system_prompt", "callback", "persons", "reasoning_effort"}
    | set(_BOOL_FIELDS)
)


class Rejection(EdgedError):
    """An API request the emulator answers with an error envelope."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def bad_request(msg: str, code: str = "1001") -> Rejection:
    return Rejection(400, code, msg)


def http_error(status: int) -> Rejection:
    """An injected HTTP failure, worded like a gateway would word it."""
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:  # a status HTTP does not name (e.g. 599)
        phrase = "error"
    return Rejection(status, str(status), phrase)


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def validate_req(raw: object, *, url_endpoint: bool, is_async: bool) -> dict[str, Any]:
    """Check a request's fields as the service documents them; the first fault names its field."""
    if not isinstance(raw, dict):
        raise bad_request("req: expected a JSON object")
    for name in raw:
        if name not in _KNOWN_FIELDS or (name == "video_url" and not url_endpoint):
            raise bad_request(f"{name}: unknown field")
    if url_endpoint and not _is_http_url(raw.get("video_url")):
        raise bad_request("video_url: required, an http(s) URL")
    for name in ("user_prompt", "system_prompt"):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise bad_request(f"{name}: required, a non-empty string")
    if (is_async or "callback" in raw) and not _is_http_url(raw.get("callback")):
        raise bad_request("callback: required, an http(s) URL")
    for name in _BOOL_FIELDS:
        if name in raw and not isinstance(raw[name], bool):
            raise bad_request(f"{name}: expected true or false")
    if "reasoning_effort" in raw and raw["reasoning_effort"] not in _REASONING_EFFORTS:
        raise bad_request('reasoning_effort: expected a string "1".."10"')
    _validate_persons(raw.get("persons", []))
    return raw


def _validate_persons(persons: object) -> None:
    if not isinstance(persons, list):
        raise bad_request("persons: expected an array")
    if len(persons) > MAX_PERSONS:
        raise bad_request(f"persons: at most {MAX_PERSONS}")
    for index, person in enumerate(persons):
        where = f"persons[{index}]"
        if not isinstance(person, dict):
            raise bad_request(f"{where}: expected an object with name and url")
        for key in person:
            if key not in ("name", "url"):
                raise bad_request(f"{where}.{key}: unknown field")
        name = person.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request(f"{where}.name: required, a non-empty string")
        if not _is_http_url(person.get("url")):
            raise bad_request(f"{where}.url: required, an http(s) URL")


# ---- envelopes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """Where one documented envelope puts its code, task id and result text."""

    code: int | str
    text_at: str  # "data.data": data.data.text; "data": data.text; "top": text
    task_id_key: str = "task_id"
    task_id_at: str = "data"  # in acks: "data" or "top"
    flags: bool = False  # adds "success" and "failed" booleans

    def stamp(self, body: dict[str, Any], *, ok: bool) -> dict[str, Any]:
        if self.flags:
            body["success"] = ok
            body["failed"] = not ok
        return body

    def place_result(self, body: dict[str, Any], text: str, token: Mapping[str, int]) -> None:
        result = {"text": text, "token": dict(token)}
        if self.text_at == "top":
            body.update(result)
        elif self.text_at == "data":
            body["data"] = result
        else:
            body["data"] = {"data": {"text": text}, "token": dict(token)}


VARIANTS: dict[str, Variant] = {
    "code0": Variant(code=0, text_at="data.data"),
    "code0000": Variant(code="0000", text_at="data.data", flags=True),
    "code200": Variant(code=200, text_at="data"),
    "string0": Variant(code="0", text_at="data"),
    "toplevel_task_id": Variant(code=0, text_at="top", task_id_at="top"),
    "taskId": Variant(code=0, text_at="data.data", task_id_key="taskId"),
}


def ack_body(envelope: str, task_id: str) -> dict[str, Any]:
    variant = VARIANTS[envelope]
    body: dict[str, Any] = {"code": variant.code, "msg": "success"}
    if variant.task_id_at == "top":
        body[variant.task_id_key] = task_id
    else:
        body["data"] = {variant.task_id_key: task_id}
    return variant.stamp(body, ok=True)


def result_body(envelope: str, text: str, token: Mapping[str, int]) -> dict[str, Any]:
    variant = VARIANTS[envelope]
    body: dict[str, Any] = {"code": variant.code, "msg": "success"}
    variant.place_result(body, text, token)
    return variant.stamp(body, ok=True)


def callback_body(
    envelope: str, task_id: str, text: str, token: Mapping[str, int]
) -> dict[str, Any]:
    # The documented callback shape is {code, message, data, task_id}: the task id on top.
    variant = VARIANTS[envelope]
    body: dict[str, Any] = {"code": variant.code, "message": "success"}
    body[variant.task_id_key] = task_id
    variant.place_result(body, text, token)
    return variant.stamp(body, ok=True)


def caption_callback_body(task_id: str, text: str, token: Mapping[str, int]) -> dict[str, Any]:
    """The one callback body the v1.2 caption page documents: status 0 is success."""
    return {"status": 0, "task_id": task_id, "data": {"text": text, "token": dict(token)}}


def caption_failure_body(task_id: str) -> dict[str, Any]:
    """The caption page's failure: status -1."""
    return {"status": -1, "task_id": task_id, "data": {}}


#: Messages of the documented business codes (API.md), for the emulator's refusals.
BUSINESS_MESSAGES = {
    "0001": "parameter error",
    "0003": "parameter error",
    "0401": "authorization invalid",
    "0402": "not enough points",
    "0403": "account disabled",
    "0409": "duplicate request",
    "0429": "too busy",
    "9009": "permission denied",
}


def error_body(envelope: str, code: str, msg: str) -> dict[str, Any]:
    return VARIANTS[envelope].stamp({"code": code, "msg": msg}, ok=False)


# ---- scripted analysis -----------------------------------------------------------------


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def script_text(
    persons: Sequence[Mapping[str, Any]],
    *,
    file_name: str | None,
    title: str | None,
    duration_s: float | None,
) -> str:
    """A fixed description, plus a person block driven by the clip's title and file name."""
    haystack = f"{title or ''}\n{file_name or ''}".casefold()
    moment = round(duration_s / 2, 1) if duration_s else 1.0
    lines = [
        "A person walks through the scene, pauses near the door and leaves the frame. "
        "The lighting is steady and nothing else moves."
    ]
    verdicts: list[dict[str, Any]] = []
    for person in persons:
        name = str(person["name"])
        present = name.casefold() in haystack
        if present:
            lines.append(f"{name} appears near the door at {_clock(moment)}.")
        else:
            lines.append(f"There is no sign of {name}.")
        verdicts.append(
            {
                "name": name,
                "present": present,
                "confidence": 0.92 if present else 0.05,
                "timestamps": [moment] if present else [],
            }
        )
    text = " ".join(lines)
    if verdicts:
        seen = [v["name"] for v in verdicts if v["present"]]
        title = f"{' and '.join(seen)} at the door" if seen else "Someone passes by"
        verdict = {"persons": verdicts, "title": title, "threat_level": 0}
        text += "\n\n```json\n" + json.dumps(verdict) + "\n```\n"
    return text


def token_usage(req: Mapping[str, Any], text: str) -> dict[str, int]:
    """Plausible token counts, roughly four characters a token."""
    prompt = f"{req.get('system_prompt', '')}{req.get('user_prompt', '')}"
    used_in = 100 + len(prompt) // 4
    used_out = max(1, len(text) // 4)
    return {"input": used_in, "output": used_out, "total": used_in + used_out}
