"""The edged config: YAML in, validated frozen objects out (every key: config.example.yaml).

Order of work: parse YAML keeping line marks, expand ${ENV} in every string, then one pydantic
pass over everything; each section reads its own *_file secrets and checks its own key
combinations. Every problem found on the way is reported together, in file order.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetPydanticSchema, ValidationError
from pydantic_core import core_schema
from pydantic_core.core_schema import SerializationInfo

from edged.config.alerts import (
    CameraFilter,
    CommandArgv,
    QuietHoursConfig,
    camera_name_problems,
    duplicate_unknown_person,
    existing_file,
)
from edged.config.fields import (
    Argv,
    CameraName,
    ConfigPath,
    Duration,
    HostPort,
    HttpUrl,
    ImagePath,
    PollInterval,
    ReasoningEffort,
    Regex,
    RtspUrl,
    Secret,
    Since,
    Size,
    Text,
    Timeout,
    TimeZone,
    parse_duration,
    parse_size,
    split_host_port,
)
from edged.config.problems import (
    SECRET_KEYS,
    ConfigError,
    ConfigModel,
    Loc,
    Problem,
    expand_env,
    explain,
    load_yaml,
    read_secret_file,
    redact_url,
    render,
)
from edged.nvr_presets import PRESETS, PathTemplate
from edged.schedule import Budget, HourRange
from edged.signing import SECRET_PREFIX, signing_key

# Re-exported: other modules take these from edged.config.model.
__all__ = ["ConfigError", "parse_duration", "parse_size", "split_host_port"]
__all__ += ["Config", "load_config", "parse_config", "redacted_yaml"]

MAX_PERSONS = 5  # the API's limit on reference persons per request


class _Section(ConfigModel):
    #: Keys that may instead be given as `<key>_file`, a file holding the secret.
    secret_files: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        for key in cls.secret_files:
            problems += read_secret_file(data, key, Path(context.get("base_dir") or Path.cwd()))
        return problems


class ApiConfig(_Section):
    """The memories.ai security API: where, with which key and prompts, within which limits."""

    secret_files = ("api_key",)

    base_url: HttpUrl = "https://security.memories.ai"
    api_key: Secret
    mode: Literal["async", "sync"] = "async"
    user_prompt: Text = "Describe what happens. Say which of the reference persons appear."
    system_prompt: Text = "You are a security camera analyst."
    thinking: bool = False
    qa: bool = False
    reasoning_effort: ReasoningEffort = None
    max_concurrent_uploads: Annotated[int, Field(ge=1, le=64)] = 2
    max_attempts: Annotated[int, Field(ge=1)] = 5
    request_timeout: Timeout = 600.0
    max_file_bytes: Size = 8 * 10**9
    max_duration: Timeout = 7200.0
    #: While uploads are paused (refused key, no credit, no permission): one try this often.
    pause_probe_interval: Timeout = 300.0
    #: On a stop, how long uploads in flight and the results they wait for are given.
    shutdown_grace: Timeout = 20.0


class CallbackConfig(_Section):
    """The public listener that receives results; durations in seconds."""

    listen: HostPort = "0.0.0.0:8080"
    public_url: HttpUrl | None = None
    result_timeout: Timeout = 1800.0
    #: Limits of the public listener (edged/results/listener_guard.py): a request head must arrive
    #: within head_timeout of connecting or of the last answer, a body within body_timeout.
    head_timeout: Timeout = 10.0
    body_timeout: Timeout = 30.0
    max_connections: Annotated[int, Field(ge=8, le=65536)] = 256

    @property
    def host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.listen)[1]

    @property
    def effective_public_url(self) -> str:
        """public_url, or a loopback URL that only works when the API runs on this host."""
        return self.public_url or f"http://127.0.0.1:{self.port}"


class PersonConfig(_Section):
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


def _hour_range(value: str) -> str:
    HourRange.parse(value)  # raises ValueError with the accepted form
    return value


HoursText = Annotated[str, AfterValidator(_hour_range)]


class BudgetConfig(_Section):
    """A daily limit on what is uploaded (UTC days); any of the three, or several."""

    clips: Annotated[int, Field(ge=0)] | None = None
    minutes: Annotated[float, Field(ge=0)] | None = None
    bytes: Size | None = None

    def budget(self) -> Budget:
        return Budget(self.clips, self.minutes, self.bytes)


def _safe_camera_name(value: str) -> str:
    # A camera name is a folder of clips/ and snapshots/ and an argument of command sinks:
    # `..` would lead out of them, `-rf` would read as an option.
    if value.startswith((".", "-")):
        raise ValueError(
            f"a camera name may not start with '.' or '-' (it names folders and is passed to"
            f" commands), got {value!r}"
        )
    return value


SafeCameraName = Annotated[CameraName, AfterValidator(_safe_camera_name)]
Preset = Literal["frigate", "zoneminder", "blueiris", "synology", "custom"]


class _CameraBase(_Section):
    """What both kinds of camera have: a name, and the cost guardrails (hours when clips are
    uploaded at all, and a daily budget)."""

    name: SafeCameraName
    schedule: tuple[HoursText, ...] = ()
    budget: BudgetConfig | None = None


class FolderCamera(_CameraBase):
    """An NVR recording folder (`folder:`), and how its recordings are found and named."""

    folder: ConfigPath
    #: None: the video extensions of edged/sources/recordings.py (VIDEO_EXTENSIONS).
    pattern: Text | None = None
    ignore: tuple[str, ...] = ("*.part", "*.tmp", "incomplete.*", ".*")
    preset: Preset | None = None
    path_regex: Regex | None = None
    timezone: TimeZone | None = None
    poll: PollInterval = None
    settle: Duration = 5.0
    since: Since = "start"
    cameras: tuple[str, ...] | None = None

    @property
    def since_s(self) -> float | None:
        """How far back the first scan looks, in seconds; None for "start" (only new files)."""
        return None if self.since == "start" else parse_duration(self.since)

    def path_template(self) -> PathTemplate | None:
        """How camera name and start time are read from a path (None: no preset)."""
        if self.preset is None:
            return None
        return PathTemplate.create(
            self.preset,
            timezone=self.timezone,
            path_regex=self.path_regex,
            default_camera=self.name,
        )


class RtspCamera(_CameraBase):
    """An RTSP camera (`rtsp:`), recorded by edged in clips of clip_seconds."""

    rtsp: RtspUrl
    clip_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    stall_timeout: Timeout = 10.0
    audio: Literal["copy", "drop"] = "copy"


# Keys that mean something for one kind of camera only, in the order of their fields.
_COMMON_KEYS = set(_CameraBase.model_fields)
_FOLDER_KEYS = tuple(k for k in FolderCamera.model_fields if k not in _COMMON_KEYS | {"folder"})
_RTSP_KEYS = tuple(k for k in RtspCamera.model_fields if k not in _COMMON_KEYS | {"rtsp"})


class CameraConfig(_Section):
    """A `cameras:` entry as written: an RTSP camera (rtsp) or an NVR recording folder
    (folder), and the options of its kind. Validated with every key of both kinds, so that a
    key of the other kind is reported as such; the config then holds it as a `FolderCamera`
    or an `RtspCamera` (`Camera`)."""

    name: SafeCameraName
    rtsp: RtspUrl | None = None
    folder: ConfigPath | None = None
    # Folder cameras.
    pattern: Text | None = None
    ignore: tuple[str, ...] = ("*.part", "*.tmp", "incomplete.*", ".*")
    preset: Preset | None = None
    path_regex: Regex | None = None
    timezone: TimeZone | None = None
    poll: PollInterval = None
    settle: Duration = 5.0
    since: Since = "start"
    cameras: tuple[str, ...] | None = None
    # RTSP cameras.
    clip_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    stall_timeout: Timeout = 10.0
    # Cost guardrails, either kind: hours when clips are uploaded at all, and a daily budget.
    schedule: tuple[HoursText, ...] = ()
    budget: BudgetConfig | None = None
    audio: Literal["copy", "drop"] = "copy"

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        name = data.get("name")
        who = f"camera {name!r}" if isinstance(name, str) else "this camera"
        rtsp, folder = data.get("rtsp") is not None, data.get("folder") is not None
        if rtsp and folder:
            return [((), f"{who} has both rtsp and folder; give only one")]
        if not rtsp and not folder:
            return [((), f"{who} needs either rtsp (a stream URL) or folder (an NVR folder)")]
        kind, other, wrong = (
            ("rtsp", "folder", _FOLDER_KEYS) if rtsp else ("folder", "rtsp", _RTSP_KEYS)
        )
        given = {key for key, value in data.items() if value is not None}
        problems: list[Problem] = [
            ((key,), f"only for {other} cameras, and {who} uses {kind}")
            for key in wrong
            if key in given
        ]
        if folder:
            preset = data.get("preset")
            if preset == "custom" and "path_regex" not in given:
                problems.append((("path_regex",), "missing: preset custom needs a path_regex"))
            if preset != "custom" and "path_regex" in given:
                problems.append((("path_regex",), "only used with preset: custom"))
            if preset is None and "cameras" in given:
                message = "only used with a preset (one folder, many cameras)"
                problems.append((("cameras",), message))
            problem = _template_problem(data)
            if problem is not None:
                problems.append((("preset",), problem))
        return problems

    def of_its_kind(self) -> FolderCamera | RtspCamera:
        """The camera as the kind it is; its values are validated already, so they are taken
        as they are."""
        kind: type[FolderCamera | RtspCamera] = (
            RtspCamera if self.rtsp is not None else FolderCamera
        )
        values = {key: getattr(self, key) for key in kind.model_fields}
        return kind.model_construct(**values)


def _camera_schema(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """A camera is validated as a `CameraConfig` entry, then held as its kind; it is written
    out (`model_dump`) as its kind, with the keys of that kind only."""
    return core_schema.no_info_after_validator_function(
        CameraConfig.of_its_kind,
        handler.generate_schema(CameraConfig),
        serialization=core_schema.plain_serializer_function_ser_schema(_dump_camera, info_arg=True),
    )


def _dump_camera(camera: FolderCamera | RtspCamera, info: SerializationInfo) -> Any:
    data = camera.model_dump(mode=info.mode, by_alias=bool(info.by_alias))
    return {key: data[key] for key in CameraConfig.model_fields if key in data}  # as written


#: A configured camera: an NVR folder or an RTSP stream, told apart by which key it has.
Camera = Annotated[FolderCamera | RtspCamera, GetPydanticSchema(_camera_schema)]


def _template_problem(data: Mapping[str, Any]) -> str | None:
    """What the preset itself objects to (e.g. frigate is always UTC, a custom regex without
    time groups that make sense). Values that are invalid on their own are reported at their
    own keys, so they are left out here."""
    preset = data.get("preset")
    if preset not in PRESETS:
        return None
    timezone, path_regex = data.get("timezone"), data.get("path_regex")
    if preset == "custom" and not isinstance(path_regex, str):
        return None  # reported at path_regex
    try:
        ZoneInfo(timezone) if isinstance(timezone, str) else None
    except (ValueError, ZoneInfoNotFoundError):
        timezone = None
    try:
        re.compile(path_regex) if isinstance(path_regex, str) else None
    except re.error:
        return None
    try:
        PathTemplate.create(
            preset,
            timezone=timezone if isinstance(timezone, str) else None,
            path_regex=path_regex if isinstance(path_regex, str) else None,
            default_camera=data.get("name") if isinstance(data.get("name"), str) else None,
        )
    except ValueError as exc:
        return str(exc)
    return None


class StorageConfig(_Section):
    """edged's own state; sizes in bytes, durations in seconds."""

    dir: ConfigPath = Path("/var/lib/edged")
    max_bytes: Size | None = None
    min_free: Size = 10**9
    keep_uploaded: Duration = 0.0


class WebhookSinkConfig(_Section):
    """POSTs each alert as JSON, signed with HMAC-SHA256 when secret is set."""

    secret_files = ("secret",)

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    secret: Secret | None = None
    timeout: Timeout = 10.0
    #: inline: base64 in the body; url: a signed link on the callback listener; none.
    snapshot: Literal["inline", "url", "none"] = "inline"

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems = super().prepare(data, context)
        secret = data.get("secret")
        if isinstance(secret, str) and secret.startswith(SECRET_PREFIX):
            try:
                signing_key(secret)
            except ValueError as exc:
                problems.append((("secret",), f"{exc} (Standard Webhooks)"))
        return problems


class MqttSinkConfig(_Section):
    """Publishes each alert to an MQTT broker under topic_prefix."""

    secret_files = ("password",)

    type: Literal["mqtt"] = "mqtt"
    host: Text
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    topic_prefix: Text = "edged"
    username: str | None = None
    password: Secret | None = None
    tls: bool = False
    ca_file: Annotated[ConfigPath, AfterValidator(existing_file)] | None = None
    discovery: bool = False
    discovery_prefix: Text = "homeassistant"
    #: A camera that edged has not heard from for this long is shown offline (None: only
    #: open outages count).
    camera_offline_after: Duration | None = 900.0

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems = super().prepare(data, context)
        if data.get("ca_file") is not None and data.get("tls") is not True:
            problems.append((("ca_file",), "only used with tls: true"))
        return problems


class CommandSinkConfig(_Section):
    """Runs a program per alert; "{person}"-style fields in argv are filled in."""

    type: Literal["command"] = "command"
    argv: Annotated[Argv, CommandArgv]
    timeout: Timeout = 30.0


class LogSinkConfig(_Section):
    """Writes each alert to the log."""

    type: Literal["log"] = "log"


SinkConfig = Annotated[
    WebhookSinkConfig | MqttSinkConfig | CommandSinkConfig | LogSinkConfig,
    Field(discriminator="type"),
]


class AlertsConfig(_Section):
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


class MetricsConfig(_Section):
    """The private listener for /metrics and /healthz; listen None turns it off."""

    listen: HostPort | None = "127.0.0.1:9464"

    @property
    def host(self) -> str | None:
        return split_host_port(self.listen)[0] if self.listen else None

    @property
    def port(self) -> int | None:
        return split_host_port(self.listen)[1] if self.listen else None


class Config(_Section):
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
