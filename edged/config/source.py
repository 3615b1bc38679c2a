"""Reading the config source: YAML with the line of every key, ${ENV} in every string, and
`<key>_file` secrets. Each step reports its own problems (edged/config/problems.py), so
that they are given with all the others."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from edged.config.problems import ConfigError, LineMap, Loc, Problem

_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_VAR_FORMS = "write ${NAME} or ${NAME:-default}"

#: Stands in for a secret whose file could not be read, so that it is not also "missing".
UNREADABLE = "\x00unreadable"


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
