"""Between config text and config models: reading the source, finding and wording problems.

A problem is a key path (`cameras[1].rtsp`) and a message; the YAML node marks give it a line.
The source steps (YAML, ${ENV}, *_file secrets) report their own problems; pydantic finds the
rest, and `ConfigModel` lets a section add problems that span keys and merges them with
pydantic's, so that one run reports everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import yaml
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
_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_VAR_FORMS = "write ${NAME} or ${NAME:-default}"
#: Stands in for a secret whose file could not be read, so that it is not also "missing".
UNREADABLE = "\x00unreadable"
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


def load_yaml(text: str, source: str) -> tuple[Any, LineMap, list[Problem]]:
    """The document as safe_load gives it, the line of every key and list item, and duplicates."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source} (line {mark.line + 1})" if mark else source
        raise ConfigError([f"{where}: invalid YAML: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML: {exc}"]) from None
    finally:
        loader.dispose()
    lines: LineMap = {}
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), lines, problems)
    return data, lines, problems


def _walk(node: yaml.Node, loc: Loc, lines: LineMap, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key_loc = (*loc, key_node.value)
            line = key_node.start_mark.line + 1
            if key_loc in lines:
                # safe_load keeps the last one silently; a repeated key is almost always a mistake.
                problems.append((key_loc, f"duplicate key (also on line {lines[key_loc]})"))
            lines[key_loc] = line
            _walk(value_node, key_loc, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), lines, problems)


def expand_env(node: Any, env: Mapping[str, str], loc: Loc, problems: list[Problem]) -> Any:
    """node with ${NAME} and ${NAME:-default} replaced in every string value (not in keys)."""
    if isinstance(node, dict):
        return {key: expand_env(value, env, (*loc, key), problems) for key, value in node.items()}
    if isinstance(node, list):
        return [expand_env(item, env, (*loc, i), problems) for i, item in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        body = _VAR_BODY.fullmatch(match.group(1))
        if body is None:
            problems.append((loc, f"bad variable {match.group(0)!r}: {_VAR_FORMS}"))
            return match.group(0)
        name, default = body.groups()
        if env.get(name):
            return env[name]
        if default is not None:  # as in the shell: the default also replaces an empty value
            return default
        if name not in env:
            problems.append((loc, f"environment variable {name} is not set"))
        return ""

    if "${" in _VAR.sub("", node):
        problems.append((loc, f"unclosed '${{': {_VAR_FORMS}"))
    return _VAR.sub(substitute, node)


def read_secret_file(data: dict[str, Any], key: str, base_dir: Path) -> list[Problem]:
    """Replace `<key>_file: PATH` in data by `<key>: <the file's text, stripped>`."""
    file_key = f"{key}_file"
    if file_key not in data:
        return []
    name = data.pop(file_key)
    if key in data:
        return [((file_key,), f"give either {key} or {file_key}, not both")]
    data[key] = UNREADABLE
    if not isinstance(name, str) or not name.strip():
        return [((file_key,), "expected the path of a file holding the secret")]
    path = base_dir / Path(name).expanduser()
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return [((file_key,), f"file not found: {path}")]
    except UnicodeDecodeError:
        return [((file_key,), f"{path} is not a text file")]
    except OSError as exc:
        return [((file_key,), f"cannot read {path}: {exc.strerror or exc}")]
    if not secret:
        return [((file_key,), f"{path} is empty")]
    data[key] = secret
    return []


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
