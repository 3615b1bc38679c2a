"""Between config text and config models: finding and wording problems.

A problem is a key path (`cameras[1].rtsp`) and a message; the YAML node marks give it a line.
The source steps (edged/config/source.py: YAML, ${ENV}, *_file secrets) report their own
problems; pydantic finds the rest, and `ConfigModel` lets a section add problems that span
keys and merges them with pydantic's, so that one run reports everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from edged.errors import EdgedError
from edged.logs import redact_url_value
from edged.names import did_you_mean

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
LineMap = dict[Loc, int]

#: Keys whose values are never shown in a message.
SECRET_KEYS = frozenset({"api_key", "secret", "password"})

_QUOTED = re.compile(r"'([^']*)'")
_TYPE_WORDS = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a text value",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "path_type": "expected a file or folder path",
}


class ConfigError(EdgedError):
    """The config cannot be used; `problems` lists every reason, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def redact_url(text: str) -> str:
    """A config value with the userinfo of its URL hidden (everything before the last `@`
    after the scheme: a password may hold a space, `/` or `@`), keeping a plain user name."""
    return redact_url_value(text)


def format_path(loc: Loc) -> str:
    """('cameras', 1, 'rtsp') -> 'cameras[1].rtsp'."""
    text = ""
    for part in loc:
        if isinstance(part, int) and text:
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def render(problems: Sequence[Problem], lines: LineMap, source: str) -> list[str]:
    """Problem lines in file order, each with the line of its key or of the nearest parent."""
    rendered: dict[str, int] = {}
    for loc, message in problems:
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        where = format_path(loc) or source
        text = f"{where} (line {line}): {message}" if line else f"{where}: {message}"
        rendered.setdefault(text, line or 0)  # the same problem found twice is said once
    return sorted(rendered, key=rendered.__getitem__)


class ConfigModel(BaseModel):
    """Base of the config sections: frozen, unknown keys refused, room for cross-key checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        """Adjust the raw mapping in place; return problems that involve more than one key.

        Runs before field validation and its problems join pydantic's, so that a section with
        a bad field and a bad combination of keys reports both.
        """
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _validate_together(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        if not isinstance(data, dict):
            return handler(data)
        data = dict(data)
        problems = cls.prepare(data, info.context or {})
        try:
            model = handler(data)
        except ValidationError as exc:
            if not problems:
                raise
            raise _merged(cls.__name__, exc, problems, data) from None
        if problems:
            raise _merged(cls.__name__, None, problems, data)
        return model


def _merged(
    title: str, exc: ValidationError | None, problems: list[Problem], data: dict[str, Any]
) -> ValidationError:
    # Ours first (they tend to say what is wrong with the whole), typed "edged"; then
    # pydantic's, re-raised with their own type and text so that `explain` reads them alike.
    details: list[InitErrorDetails] = [
        {
            "type": PydanticCustomError("edged", message),
            "loc": loc,
            "input": data.get(loc[0]) if loc and isinstance(loc[0], str) else data,
        }
        for loc, message in problems
    ]
    ours = [loc for loc, _ in problems if loc]
    for err in exc.errors(include_url=False) if exc else []:
        if any(err["loc"][: len(loc)] == loc for loc in ours):
            continue  # a key that should not be there at all need not also be valid
        custom = PydanticCustomError(err["type"], err["msg"])
        details.append({"type": custom, "loc": err["loc"], "input": err["input"]})
    return ValidationError.from_exception_data(title, details)


def explain(
    exc: ValidationError,
    data: Any,
    *,
    known_keys: Callable[[Loc], Sequence[str]],
    missing_hints: Mapping[Loc, str],
) -> list[Problem]:
    """Pydantic errors as (key path, message): union tags dropped, messages in user terms.

    known_keys(loc) lists the keys a mapping accepts (loc as pydantic gives it, with union
    tags) for "did you mean"; missing_hints maps a path without list indexes to a message.
    """
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc, kind, value = _data_loc(err["loc"], data), err["type"], err["input"]
        bare = tuple(part for part in loc if isinstance(part, str))
        # The config's one tagged union (alert sinks) is told apart by `type`.
        if kind == "union_tag_not_found":
            loc, bare, kind = (*loc, "type"), (*bare, "type"), "missing"
        if kind == "union_tag_invalid":
            tags = _QUOTED.findall(err["msg"].rpartition(":")[2])
            tag = value.get("type") if isinstance(value, dict) else None
            message = f"unknown type {tag!r}; valid types: {', '.join(tags)}"
            problems.append(((*loc, "type"), message + did_you_mean(tag, tags)))
            continue
        if kind == "missing":
            message = missing_hints.get(bare, "missing: this key is required")
        elif kind == "extra_forbidden":
            message = "unknown key" + did_you_mean(loc[-1], known_keys(err["loc"][:-1]))
        elif kind == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        elif kind == "literal_error":
            options = _QUOTED.findall(err["msg"])
            message = f"expected one of {', '.join(repr(o) for o in options)}"
            message += _got(loc, value) + did_you_mean(value, options)
        elif kind in _TYPE_WORDS:
            message = _TYPE_WORDS[kind] + _got(loc, value)
        elif err["msg"].startswith("Input should be "):
            message = "should be " + err["msg"].removeprefix("Input should be ") + _got(loc, value)
        else:
            message = err["msg"]
        problems.append((loc, message))
    return problems


def _data_loc(loc: Loc, data: Any) -> Loc:
    # Pydantic puts the tag of a tagged union (`webhook`) into the path; the YAML has no such key.
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        out.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return tuple(out)


def _got(loc: Loc, value: object) -> str:
    if loc and loc[-1] in SECRET_KEYS:
        return ""
    if isinstance(value, dict):
        return ", got a mapping"
    if isinstance(value, list | tuple):
        return ", got a list"
    if value is None:
        return ", got nothing"
    shown = repr(redact_url(value)) if isinstance(value, str) else repr(value)
    return f", got {shown if len(shown) <= 80 else shown[:77] + '...'}"
