"""The edged config: YAML in, validated frozen objects out (every key: config.example.yaml).

The sections are in their own modules: `service` (api, callback, storage, metrics),
`cameras`, `sinks` and `alerts`; this one holds the whole (`Config`, the persons and the
alert settings, and the checks across sections) and reads it: `parse_config`,
`load_config`, `redacted_yaml`.

Order of work: parse YAML keeping line marks, expand ${ENV} in every string, then one pydantic
pass over everything; each section reads its own *_file secrets and checks its own key
combinations. Every problem found on the way is reported together, in file order.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError

from edged.config.activity import ActivityConfig
from edged.config.alerts import (
    CameraFilter,
    QuietHoursConfig,
    camera_name_problems,
    duplicate_unknown_person,
)
from edged.config.base import Section
from edged.config.cameras import BudgetConfig, Camera, CameraConfig, FolderCamera, RtspCamera
from edged.config.fields import HttpUrl, ImagePath, Text, split_host_port
from edged.config.frigate import FrigateGateConfig
from edged.config.problems import (
    SECRET_KEYS,
    ConfigError,
    ConfigModel,
    Loc,
    Problem,
    explain,
    redact_url,
    render,
)
from edged.config.service import ApiConfig, CallbackConfig, MetricsConfig, StorageConfig
from edged.config.sinks import (
    CommandSinkConfig,
    LogSinkConfig,
    MqttSinkConfig,
    SinkConfig,
    WebhookSinkConfig,
)
from edged.config.source import expand_env, load_yaml
from edged.config.units import Duration, parse_duration, parse_size

# Re-exported: other modules take these from edged.config.model.
__all__ = ["ConfigError", "parse_duration", "parse_size", "split_host_port"]
__all__ += ["Config", "load_config", "parse_config", "redacted_yaml"]
__all__ += ["ApiConfig", "CallbackConfig", "MetricsConfig", "StorageConfig"]
__all__ += ["BudgetConfig", "Camera", "CameraConfig", "FolderCamera", "RtspCamera"]
__all__ += ["CommandSinkConfig", "LogSinkConfig", "MqttSinkConfig", "SinkConfig"]
__all__ += ["WebhookSinkConfig"]

MAX_PERSONS = 5  # the API's limit on reference persons per request


class PersonConfig(Section):
    """A reference person: a public image url, or a local image that edged serves."""

    name: Text
    url: HttpUrl | None = None
    image: ImagePath | None = None
    #: never: recognised (so not "unknown"), but raises no alert.
    alert: Literal["always", "never"] = "always"
    cameras: CameraFilter | None = None

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        given = [key for key in ("url", "image") if data.get(key) is not None]
        if not given:
            return [((), "give either url or image")]
        if len(given) == 2:
            return [((), "give either url or image, not both")]
        return []


class AlertsConfig(Section):
    """When a match becomes an alert, and where alerts go."""

    cooldown: Duration = 300.0
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    retry_max_age: Duration = 86400.0
    #: Alerts per hour for one person on one camera, counted per sink; None: no limit.
    max_per_hour: Annotated[int, Field(ge=1)] | None = None
    #: Also alert on people seen who match no reference person (person "unknown").
    unknown: bool = False
    quiet_hours: tuple[QuietHoursConfig, ...] = ()
    snapshot_retention: Duration = 7 * 86400.0
    sinks: tuple[SinkConfig, ...] = ()


class Config(Section):
    """The whole config; only api (with its key) is required."""

    api: ApiConfig
    callback: CallbackConfig = Field(default_factory=CallbackConfig)
    persons: tuple[PersonConfig, ...] = ()
    cameras: tuple[Camera, ...] = ()
    storage: StorageConfig = Field(default_factory=StorageConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    instance: Text = Field(default_factory=socket.gethostname)
    budget: BudgetConfig | None = None  # for the whole box, on top of the cameras' own

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        persons, cameras = data.get("persons"), data.get("cameras")
        if isinstance(persons, list):
            if len(persons) > MAX_PERSONS:
                message = f"at most {MAX_PERSONS} persons (API limit), got {len(persons)}"
                problems.append((("persons",), message))
            # The matcher finds persons by name in free text, so case does not tell them apart.
            problems += _duplicate_names("persons", persons, str.casefold)
        if isinstance(cameras, list):
            problems += _duplicate_names("cameras", cameras, str)
        return problems + _alert_problems(data)


def _alert_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Alert settings that refer to other sections: camera names, person names, public_url."""
    problems = camera_name_problems(data)
    alerts, callback = _mapping(data.get("alerts")), _mapping(data.get("callback"))
    persons = data.get("persons")
    if alerts.get("unknown") is True and isinstance(persons, list):
        problems += duplicate_unknown_person(persons)
    if alerts.get("unknown") is True and not persons:
        message = "needs at least one person: unknown means matching none of them"
        problems.append((("alerts", "unknown"), message))
    sinks = alerts.get("sinks")
    for index, sink in enumerate(sinks if isinstance(sinks, list) else []):
        if (
            isinstance(sink, dict)
            and sink.get("snapshot") == "url"
            and not callback.get("public_url")
        ):
            message = "url needs callback.public_url, where receivers fetch the picture"
            problems.append((("alerts", "sinks", index, "snapshot"), message))
    return problems


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _duplicate_names(section: str, items: list[Any], fold: Any) -> list[Problem]:
    first: dict[str, int] = {}
    problems: list[Problem] = []
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str):
            seen = first.setdefault(fold(name), index)
            if seen != index:
                message = f"duplicate name {name!r} (also {section}[{seen}])"
                problems.append(((section, index, "name"), message))
    return problems


_SECTIONS: dict[Loc, type[ConfigModel]] = {
    (): Config,
    ("api",): ApiConfig,
    ("callback",): CallbackConfig,
    ("persons",): PersonConfig,
    ("cameras",): CameraConfig,
    ("cameras", "activity"): ActivityConfig,
    ("cameras", "frigate"): FrigateGateConfig,
    ("cameras", "budget"): BudgetConfig,
    ("storage",): StorageConfig,
    ("alerts",): AlertsConfig,
    ("metrics",): MetricsConfig,
    ("alerts", "sinks", "webhook"): WebhookSinkConfig,
    ("alerts", "sinks", "mqtt"): MqttSinkConfig,
    ("alerts", "sinks", "command"): CommandSinkConfig,
    ("alerts", "sinks", "log"): LogSinkConfig,
    ("persons", "cameras"): CameraFilter,
    ("alerts", "quiet_hours"): QuietHoursConfig,
}
_MISSING_HINTS: dict[Loc, str] = {
    ("api", "api_key"): "missing: set api_key (e.g. ${EDGED_API_KEY}) or api_key_file",
    ("alerts", "sinks", "type"): "missing: set type to webhook, mqtt, command or log",
    ("alerts", "quiet_hours", "hours"): 'missing: the window, e.g. hours: "22:00-06:00"',
}


def _known_keys(loc: Loc) -> list[str]:
    section = _SECTIONS.get(tuple(part for part in loc if isinstance(part, str)))
    if section is None:
        return []
    keys = [field.alias or name for name, field in section.model_fields.items()]
    secret_files: tuple[str, ...] = getattr(section, "secret_files", ())
    return [*keys, *(f"{key}_file" for key in secret_files)]


def parse_config(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    source: str = "<config>",
) -> Config:
    """Validate config text; relative paths in it are taken from base_dir (default: cwd)."""
    data, lines, problems = load_yaml(text, source)
    if data is None:
        data = {}  # an empty file: the missing api key is then the one thing to say
    if not isinstance(data, dict):
        shown = "a list" if isinstance(data, list) else repr(data)
        raise ConfigError([f"{source} (line 1): expected a mapping of settings, got {shown}"])
    data = expand_env(data, os.environ if env is None else env, (), problems)
    # An empty section (`cameras:` with all entries commented out) means its defaults.
    data = {key: value for key, value in data.items() if value is not None}
    data.setdefault("api", {})
    early = [loc for loc, _ in problems]
    config: Config | None = None
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        found = explain(exc, data, known_keys=_known_keys, missing_hints=_MISSING_HINTS)
        # A value already reported (e.g. an unset variable) is not reported again as invalid.
        problems += [p for p in found if not any(p[0][: len(loc)] == loc for loc in early)]
    if problems or config is None:
        raise ConfigError(render(problems, lines, source))
    return config


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; ConfigError lists every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a UTF-8 text file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return parse_config(text, env=env, base_dir=path.absolute().parent, source=str(path))


def redacted_yaml(config: Config) -> str:
    """The effective config as YAML, loadable again, with every secret shown as "***"."""
    # A camera shows only the keys of its kind, so that the output loads again.
    data = config.model_dump(mode="json", by_alias=True)
    return yaml.safe_dump(_redact(data), sort_keys=False)


def _redact(node: Any, key: object = None) -> Any:
    if isinstance(node, dict):
        return {k: _redact(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(item) for item in node]
    if key in SECRET_KEYS and node is not None:
        return "***"
    return redact_url(node) if isinstance(node, str) else node
