"""Config loading: defaults, ${ENV} and *_file secrets, and the problems a user is shown."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest
import yaml

from edged.config.model import (
    CameraConfig,
    CommandSinkConfig,
    Config,
    ConfigError,
    FolderCamera,
    LogSinkConfig,
    MqttSinkConfig,
    RtspCamera,
    WebhookSinkConfig,
    load_config,
    parse_config,
    parse_duration,
    parse_size,
    redacted_yaml,
)
from edged.errors import EdgedError
from tests.support.images import write_jpeg

REPO = Path(__file__).resolve().parents[2]
MINIMAL = "api: {api_key: k}\n"


def parse(text: str, **kwargs: object) -> Config:
    kwargs.setdefault("env", {})
    return parse_config(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]


def problems(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, **kwargs)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# --- defaults and the full example ---------------------------------------------------------


def test_minimal_config_fills_every_default() -> None:
    config = parse(MINIMAL)
    api = config.api
    assert api.api_key.get_secret_value() == "k"
    assert api.base_url == "https://security.memories.ai"
    assert (api.mode, api.thinking, api.qa, api.reasoning_effort) == ("async", False, False, None)
    assert api.user_prompt == "Describe what happens. Say which of the reference persons appear."
    assert api.system_prompt == "You are a security camera analyst."
    assert (api.max_concurrent_uploads, api.max_attempts) == (2, 5)
    assert (api.request_timeout, api.max_file_bytes, api.max_duration) == (600.0, 8e9, 7200.0)
    assert config.callback.listen == "0.0.0.0:8080"
    assert (config.callback.host, config.callback.port) == ("0.0.0.0", 8080)
    assert config.callback.public_url is None
    assert config.callback.effective_public_url == "http://127.0.0.1:8080"
    assert config.callback.result_timeout == 1800.0
    assert config.persons == () and config.cameras == ()
    assert config.storage.dir == Path("/var/lib/edged")
    assert (config.storage.max_bytes, config.storage.min_free) == (None, 10**9)
    assert config.storage.keep_uploaded == 0.0
    alerts = config.alerts
    assert (alerts.cooldown, alerts.min_confidence, alerts.retry_max_age) == (300.0, 0.5, 86400.0)
    assert alerts.sinks == ()
    assert config.metrics.listen == "127.0.0.1:9464"
    assert config.instance == socket.gethostname()


def test_config_is_frozen() -> None:
    config = parse(MINIMAL)
    with pytest.raises(ValueError):
        config.api.mode = "sync"


# The example of DESIGN.md, "Configuration", as written there.
DESIGN_EXAMPLE = """\
api:
  base_url: https://security.memories.ai
  api_key: ${EDGED_API_KEY}           # or api_key_file: /run/credentials/edged.service/api_key
  mode: async                         # async: uploadFile + callback; sync: uploadFileSync
  user_prompt: "Describe what happens. Say which of the reference persons appear."
  system_prompt: "You are a security camera analyst."
  thinking: false
  qa: false
  reasoning_effort: "2"
  max_concurrent_uploads: 2
  max_attempts: 5
  request_timeout: 10m
callback:
  listen: 0.0.0.0:8080                # the only listener exposed to the internet
  public_url: https://edge.example.com  # how the cloud reaches `listen`
  result_timeout: 30m
persons:                              # up to 5 (API limit)
  - name: Alice
    url: https://example.com/alice.jpg
  - name: Bob
    image: /etc/edged/persons/bob.jpg # served to the API under public_url with an unguessable path
cameras:
  - name: front-door
    rtsp: rtsp://user:pass@192.0.2.10:554/stream1
    clip_seconds: 60
  - name: yard
    folder: /srv/nvr/yard
    pattern: "*.mp4"
  - name: frigate                     # one folder, many cameras: camera and time come from the path
    folder: /media/frigate/recordings
    preset: frigate
storage:
  dir: /var/lib/edged                 # ledger and RTSP clips
  max_bytes: 20GB
alerts:
  cooldown: 5m
  min_confidence: 0.5
  sinks:
    - type: webhook
      url: https://hooks.example.com/edged
      secret: ${EDGED_WEBHOOK_SECRET}   # HMAC-SHA256 signature header
    - type: mqtt
      host: 127.0.0.1
      topic_prefix: edged
    - type: command
      argv: ["/usr/local/bin/notify", "{person}", "{camera}"]
    - type: log
metrics:
  listen: 127.0.0.1:9464              # /metrics and /healthz; never on the public listener
"""


@pytest.fixture
def design_text(tmp_path: Path) -> str:
    bob = write_jpeg(tmp_path / "bob.jpg")
    return DESIGN_EXAMPLE.replace("/etc/edged/persons/bob.jpg", str(bob))


def test_design_example_parses(design_text: str, tmp_path: Path) -> None:
    env = {"EDGED_API_KEY": "key-123", "EDGED_WEBHOOK_SECRET": "hook-secret"}
    config = parse_config(design_text, env=env, base_dir=tmp_path)
    assert config.api.api_key.get_secret_value() == "key-123"
    assert config.api.reasoning_effort == "2"
    assert config.callback.public_url == "https://edge.example.com"
    assert [p.name for p in config.persons] == ["Alice", "Bob"]
    assert config.persons[1].image == tmp_path / "bob.jpg"
    front, yard, frigate = config.cameras
    assert front.rtsp == "rtsp://user:pass@192.0.2.10:554/stream1" and front.clip_seconds == 60
    assert (yard.folder, yard.pattern) == (Path("/srv/nvr/yard"), "*.mp4")
    assert frigate.preset == "frigate"
    assert config.storage.max_bytes == 20 * 10**9
    webhook, mqtt, command, log = config.alerts.sinks
    assert isinstance(webhook, WebhookSinkConfig) and webhook.secret is not None
    assert webhook.secret.get_secret_value() == "hook-secret"
    assert isinstance(mqtt, MqttSinkConfig) and (mqtt.host, mqtt.port) == ("127.0.0.1", 1883)
    assert isinstance(command, CommandSinkConfig)
    assert command.argv == ("/usr/local/bin/notify", "{person}", "{camera}")
    assert isinstance(log, LogSinkConfig)


def test_example_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGED_API_KEY", "from-env")
    config = load_config(REPO / "config.example.yaml")
    assert config.api.api_key.get_secret_value() == "from-env"
    defaults = parse(MINIMAL)
    # The example states the defaults, so apart from its sample entries it is the default config.
    assert config.api.model_dump() == {**defaults.api.model_dump(), "api_key": config.api.api_key}
    for section in ("callback", "storage", "metrics"):
        assert getattr(config, section) == getattr(defaults, section)
    assert config.alerts.model_copy(update={"sinks": ()}) == defaults.alerts
    assert [type(sink).__name__ for sink in config.alerts.sinks] == [
        "WebhookSinkConfig",
        "MqttSinkConfig",
        "CommandSinkConfig",
        "LogSinkConfig",
    ]


# --- ${ENV} and *_file secrets ---------------------------------------------------------------


def test_env_expansion_with_default_and_inside_text() -> None:
    config = parse(
        """\
        api:
          api_key: ${KEY}
          base_url: ${BASE:-https://api.example.com}/
          user_prompt: "Watch ${SITE} closely"
        """,
        env={"KEY": "secret", "SITE": "the yard"},
    )
    assert config.api.api_key.get_secret_value() == "secret"
    assert config.api.base_url == "https://api.example.com"
    assert config.api.user_prompt == "Watch the yard closely"


def test_env_values_are_typed_after_expansion() -> None:
    config = parse(
        "api: {api_key: k, max_attempts: '${N}', thinking: '${T}'}\n", env={"N": "7", "T": "true"}
    )
    assert (config.api.max_attempts, config.api.thinking) == (7, True)


def test_unset_env_variable_names_the_variable_and_key() -> None:
    assert problems(
        """\
        api:
          api_key: ${EDGED_API_KEY}
        cameras:
          - name: cam
            rtsp: ${CAM_URL}
        """
    ) == [
        "api.api_key (line 2): environment variable EDGED_API_KEY is not set",
        "cameras[0].rtsp (line 5): environment variable CAM_URL is not set",
    ]


def test_malformed_variable_reference() -> None:
    assert problems("api: {api_key: '${1X}'}\n") == [
        "api.api_key (line 1): bad variable '${1X}': write ${NAME} or ${NAME:-default}"
    ]


def test_api_key_file_is_read_stripped_and_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("  the-key\n\n")
    config = parse("api: {api_key_file: key}\n", base_dir=tmp_path)
    assert config.api.api_key.get_secret_value() == "the-key"


def test_secret_files_of_sinks(tmp_path: Path) -> None:
    (tmp_path / "hook").write_text("hook\n")
    (tmp_path / "mqtt").write_text("pw\n")
    config = parse(
        f"""\
        api: {{api_key: k}}
        alerts:
          sinks:
            - {{type: webhook, url: "https://h.example.com/", secret_file: {tmp_path}/hook}}
            - {{type: mqtt, host: broker, username: u, password_file: mqtt}}
        """,
        base_dir=tmp_path,
    )
    webhook, mqtt = config.alerts.sinks
    assert isinstance(webhook, WebhookSinkConfig) and webhook.secret is not None
    assert webhook.secret.get_secret_value() == "hook"
    assert webhook.url == "https://h.example.com"
    assert isinstance(mqtt, MqttSinkConfig) and mqtt.password is not None
    assert mqtt.password.get_secret_value() == "pw"


def test_api_key_and_api_key_file_together(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k2")
    assert problems("api:\n  api_key: k\n  api_key_file: key\n", base_dir=tmp_path) == [
        "api.api_key_file (line 3): give either api_key or api_key_file, not both"
    ]


def test_unreadable_and_empty_secret_files(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text(" \n")
    text = """\
        api:
          api_key_file: nope
        alerts:
          sinks:
            - {type: mqtt, host: h, password_file: empty}
        """
    assert problems(text, base_dir=tmp_path) == [
        f"api.api_key_file (line 2): file not found: {tmp_path}/nope",
        f"alerts.sinks[0].password_file (line 5): {tmp_path}/empty is empty",
    ]


def test_missing_api_key() -> None:
    hint = "missing: set api_key (e.g. ${EDGED_API_KEY}) or api_key_file"
    assert problems("storage: {dir: /tmp}\n") == [f"api.api_key: {hint}"]
    assert problems("api:\n  mode: sync\n") == [f"api.api_key (line 1): {hint}"]
    assert problems("api: {api_key: ''}\n") == ["api.api_key (line 1): must not be empty"]
    assert problems("api: {api_key: '${K:-}'}\n") == ["api.api_key (line 1): must not be empty"]


def test_numeric_secret_is_taken_as_text() -> None:
    assert parse("api: {api_key: 12345}\n").api.api_key.get_secret_value() == "12345"


# --- api and callback ------------------------------------------------------------------------


def test_unknown_key_suggests_the_close_one() -> None:
    assert problems("api:\n  api_key: k\n  max_concurent_uploads: 4\n  foo: 1\n") == [
        "api.max_concurent_uploads (line 3): unknown key; did you mean 'max_concurrent_uploads'?",
        "api.foo (line 4): unknown key",
    ]


def test_unknown_top_level_key() -> None:
    assert problems(MINIMAL + "camera: []\n") == [
        "camera (line 2): unknown key; did you mean 'cameras'?"
    ]


def test_api_value_checks() -> None:
    assert problems(
        """\
        api:
          api_key: k
          base_url: security.memories.ai
          mode: asyn
          reasoning_effort: 11
          max_concurrent_uploads: 0
          thinking: maybe
        """
    ) == [
        "api.base_url (line 3): expected an http:// or https:// URL, got 'security.memories.ai'",
        "api.mode (line 4): expected one of 'async', 'sync', got 'asyn'; did you mean 'async'?",
        'api.reasoning_effort (line 5): expected "1" to "10", got 11',
        "api.max_concurrent_uploads (line 6): should be greater than or equal to 1, got 0",
        "api.thinking (line 7): expected true or false, got 'maybe'",
    ]


def test_reasoning_effort_number_is_stored_as_text() -> None:
    assert parse("api: {api_key: k, reasoning_effort: 10}\n").api.reasoning_effort == "10"


def test_public_url_must_be_http() -> None:
    text = MINIMAL + "callback:\n  public_url: ftp://edge.example.com\n"
    assert problems(text) == [
        "callback.public_url (line 3): expected an http:// or https:// URL,"
        " got 'ftp://edge.example.com'"
    ]


def test_callback_addresses() -> None:
    callback = parse(
        MINIMAL + "callback: {listen: '[::]:9000', public_url: 'https://e.example.com/x/'}\n"
    ).callback
    assert (callback.host, callback.port) == ("::", 9000)
    assert callback.effective_public_url == "https://e.example.com/x"
    assert problems(MINIMAL + "callback: {listen: 8080}\n") == [
        "callback.listen (line 2): expected a text value, got 8080"
    ]
    assert problems(MINIMAL + "metrics: {listen: 'localhost:99999'}\n") == [
        "metrics.listen (line 2): expected host:port, e.g. 0.0.0.0:8080 or [::]:8080,"
        " got 'localhost:99999'"
    ]


def test_metrics_can_be_disabled() -> None:
    assert parse(MINIMAL + "metrics: {listen: null}\n").metrics.listen is None


# --- persons ---------------------------------------------------------------------------------


def test_at_most_five_persons() -> None:
    persons = "".join(
        f"  - {{name: p{i}, url: 'https://x.example.com/{i}.jpg'}}\n" for i in range(6)
    )
    assert problems(MINIMAL + "persons:\n" + persons) == [
        "persons (line 2): at most 5 persons (API limit), got 6"
    ]


def test_person_needs_url_or_image() -> None:
    assert problems(MINIMAL + "persons:\n  - name: Alice\n") == [
        "persons[0] (line 3): give either url or image"
    ]


def test_person_with_both_url_and_image(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "a.jpg")
    text = MINIMAL + "persons:\n  - {name: A, url: 'https://x.example.com/a.jpg', image: a.jpg}\n"
    assert problems(text, base_dir=tmp_path) == [
        "persons[0] (line 3): give either url or image, not both"
    ]


def test_person_image_resolved_against_base_dir(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "bob.jpg")
    config = parse(MINIMAL + "persons:\n  - {name: Bob, image: bob.jpg}\n", base_dir=tmp_path)
    assert config.persons[0].image == tmp_path / "bob.jpg"
    assert config.persons[0].url is None


def test_bad_person_images(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "fake.png").write_bytes(b"GIF89a....")
    (tmp_path / "bob.gif").write_bytes(b"GIF89a....")
    text = """\
        api: {api_key: k}
        persons:
          - {name: A, image: missing.jpg}
          - {name: B, image: folder.jpg}
          - {name: C, image: fake.png}
          - {name: D, image: bob.gif}
        """
    assert problems(text, base_dir=tmp_path) == [
        f"persons[0].image (line 3): image file not found: {tmp_path}/missing.jpg",
        f"persons[1].image (line 4): not a file: {tmp_path}/folder.jpg",
        f"persons[2].image (line 5): {tmp_path}/fake.png is not a PNG image"
        " (its content does not match)",
        "persons[3].image (line 6): expected a .jpg, .jpeg or .png image, got 'bob.gif'",
    ]


def test_duplicate_person_names_ignore_case() -> None:
    text = (
        MINIMAL
        + "persons:\n  - {name: Bob, url: 'https://x/b'}\n  - {name: bob, url: 'https://x/c'}\n"
    )
    assert problems(text) == ["persons[1].name (line 4): duplicate name 'bob' (also persons[0])"]


# --- cameras ---------------------------------------------------------------------------------


def test_rtsp_and_folder_cameras(tmp_path: Path) -> None:
    config = parse(
        """\
        api: {api_key: k}
        cameras:
          - {name: door, rtsp: "rtsps://cam/s", clip_seconds: 30, audio: drop}
          - {name: yard, folder: nvr/yard, poll: true, since: 2h, timezone: Europe/Berlin}
          - {name: nvr, folder: /nvr, preset: custom, path_regex: '(?P<camera>\\w+)/', poll: 30s}
          - {name: all, folder: /nvr, preset: frigate, cameras: [a, b], poll: false}
        """,
        base_dir=tmp_path,
    )
    door, yard, nvr, every = config.cameras
    assert (door.clip_seconds, door.audio, door.rtsp_transport) == (30, "drop", "tcp")
    assert isinstance(door, RtspCamera) and not hasattr(door, "folder")
    assert all(isinstance(camera, FolderCamera) for camera in (yard, nvr, every))
    assert yard.folder == tmp_path / "nvr/yard"
    assert (yard.poll, yard.since, yard.since_s, yard.timezone) == (
        10.0,
        "2h",
        7200.0,
        "Europe/Berlin",
    )
    assert (yard.pattern, yard.settle) == (None, 5.0)
    assert yard.ignore == ("*.part", "*.tmp", "incomplete.*", ".*")
    assert (nvr.poll, nvr.since_s) == (30.0, None)
    assert (every.cameras, every.poll) == (("a", "b"), None)


def test_duplicate_camera_names() -> None:
    text = MINIMAL + "cameras:\n  - {name: yard, folder: /a}\n  - {name: yard, folder: /b}\n"
    assert problems(text) == ["cameras[1].name (line 4): duplicate name 'yard' (also cameras[0])"]


def test_camera_needs_exactly_one_of_rtsp_and_folder() -> None:
    text = MINIMAL + "cameras:\n  - {name: both, rtsp: 'rtsp://c/s', folder: /a}\n  - name: none\n"
    assert problems(text) == [
        "cameras[0] (line 3): camera 'both' has both rtsp and folder; give only one",
        "cameras[1] (line 4): camera 'none' needs either rtsp (a stream URL)"
        " or folder (an NVR folder)",
    ]


def test_keys_for_the_other_kind_of_camera() -> None:
    text = """\
        api: {api_key: k}
        cameras:
          - name: door
            rtsp: rtsp://cam/s
            pattern: "*.mp4"
          - name: yard
            folder: /nvr
            clip_seconds: 30
        """
    assert problems(text) == [
        "cameras[0].pattern (line 5): only for folder cameras, and camera 'door' uses rtsp",
        "cameras[1].clip_seconds (line 8): only for rtsp cameras, and camera 'yard' uses folder",
    ]


def test_camera_value_checks() -> None:
    text = """\
        api: {api_key: k}
        cameras:
          - name: front door
            rtsp: http://admin:hunter2@cam/s
          - name: yard
            folder: /nvr
            preset: frigat
            timezone: Europe/Berln
            path_regex: "("
        """
    found = problems(text)
    assert found[:3] == [
        "cameras[0].name (line 3): use only letters, digits, '_', '.' and '-' in names,"
        " got 'front door'",
        "cameras[0].rtsp (line 4): expected an rtsp:// or rtsps:// URL, got 'http://admin:***@cam/s'",
        "cameras[1].preset (line 7): expected one of 'frigate', 'zoneminder', 'blueiris',"
        " 'synology', 'custom', got 'frigat'; did you mean 'frigate'?",
    ]
    assert found[3].startswith("cameras[1].timezone (line 8): unknown time zone 'Europe/Berln'")
    assert found[3].endswith("did you mean 'Europe/Berlin'?")
    assert found[4:] == ["cameras[1].path_regex (line 9): only used with preset: custom"]
    assert not any("hunter2" in line for line in found)


def test_misplaced_key_is_not_also_checked() -> None:
    text = MINIMAL + "cameras:\n  - {name: x, rtsp: 'rtsp://c/s', settle: 5 minutes}\n"
    assert problems(text) == [
        "cameras[0].settle (line 3): only for folder cameras, and camera 'x' uses rtsp"
    ]


def test_invalid_path_regex() -> None:
    text = MINIMAL + "cameras:\n  - {name: n, folder: /nvr, preset: custom, path_regex: '('}\n"
    (problem,) = problems(text)
    assert problem.startswith("cameras[0].path_regex (line 3): invalid regular expression:")


def test_custom_preset_needs_path_regex() -> None:
    text = MINIMAL + "cameras:\n  - {name: n, folder: /nvr, preset: custom}\n"
    assert problems(text) == [
        "cameras[0].path_regex (line 3): missing: preset custom needs a path_regex"
    ]


def test_bad_durations_in_config() -> None:
    text = """\
        api: {api_key: k}
        cameras:
          - {name: a, folder: /a, settle: 5 minutes}
          - {name: b, rtsp: "rtsp://c/s", stall_timeout: -1s}
        """
    assert problems(text) == [
        "cameras[0].settle (line 3): invalid duration '5 minutes': use seconds (e.g. 90) or a"
        " number with a unit: 500ms, 90s, 5m, 2h, 1d, or combined like 1h30m",
        "cameras[1].stall_timeout (line 4): invalid duration '-1s': must not be negative; use"
        " seconds (e.g. 90) or a number with a unit: 500ms, 90s, 5m, 2h, 1d,"
        " or combined like 1h30m",
    ]


def test_timeouts_must_be_positive() -> None:
    assert problems("api: {api_key: k, request_timeout: 0s}\n") == [
        "api.request_timeout (line 1): must be more than 0"
    ]


# --- alerts ----------------------------------------------------------------------------------


def test_unknown_sink_type() -> None:
    text = MINIMAL + "alerts:\n  sinks:\n    - type: webhok\n      url: https://h\n    - {}\n"
    assert problems(text) == [
        "alerts.sinks[0].type (line 4): unknown type 'webhok';"
        " valid types: webhook, mqtt, command, log; did you mean 'webhook'?",
        "alerts.sinks[1].type (line 6): missing: set type to webhook, mqtt, command or log",
    ]


def test_sink_checks() -> None:
    text = """\
        api: {api_key: k}
        alerts:
          min_confidence: 1.5
          sinks:
            - {type: mqtt, port: 1883, topic: x}
            - {type: command, argv: notify}
            - {type: command, argv: []}
        """
    assert problems(text) == [
        "alerts.min_confidence (line 3): should be less than or equal to 1, got 1.5",
        "alerts.sinks[0].host (line 5): missing: this key is required",
        "alerts.sinks[0].topic (line 5): unknown key; did you mean 'topic_prefix'?",
        "alerts.sinks[1].argv (line 6): expected a list,"
        ' e.g. ["/usr/local/bin/notify", "{person}"]',
        "alerts.sinks[2].argv (line 7): must name at least the program to run",
    ]


# --- several problems, YAML and files --------------------------------------------------------


def test_all_problems_are_reported_together() -> None:
    text = """\
        api:
          mode: sync
        cameras:
          - {name: a, folder: /a}
          - {name: b, folder: /b}
          - {name: c, folder: /c, settle: soon}
        storage:
          max_bytes: lots
        """
    assert problems(text) == [
        "api.api_key (line 1): missing: set api_key (e.g. ${EDGED_API_KEY}) or api_key_file",
        "cameras[2].settle (line 6): invalid duration 'soon': use seconds (e.g. 90) or a number"
        " with a unit: 500ms, 90s, 5m, 2h, 1d, or combined like 1h30m",
        "storage.max_bytes (line 8): invalid size 'lots': use bytes (e.g. 1048576) or a number"
        " with a unit: 100B, 500MB, 1.5GB, 512KiB, 2GiB (KB, MB, GB, TB count in 1000s;"
        " KiB, MiB, GiB, TiB in 1024s)",
    ]


def test_field_and_shape_problems_of_one_camera_come_together() -> None:
    text = MINIMAL + "cameras:\n  - {name: x, clip_seconds: 1}\n"
    assert problems(text) == [
        "cameras[0] (line 3): camera 'x' needs either rtsp (a stream URL)"
        " or folder (an NVR folder)",
        "cameras[0].clip_seconds (line 3): should be greater than or equal to 5, got 1",
    ]


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("api:\n  api_key: k\n  mode: [sync\n", source="edged.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("edged.yaml (line 4): invalid YAML:")


def test_duplicate_yaml_key() -> None:
    assert problems("api:\n  api_key: a\n  api_key: b\n") == [
        "api.api_key (line 3): duplicate key (also on line 2)"
    ]


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- api\n") == ["<config> (line 1): expected a mapping of settings, got a list"]


def test_empty_sections_mean_defaults() -> None:
    config = parse(MINIMAL + "cameras:\npersons:\nalerts:\n")
    assert config.cameras == () and config.alerts.sinks == ()


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)
    assert issubclass(ConfigError, EdgedError)


def test_load_config_resolves_paths_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k\n")
    path = tmp_path / "edged.yaml"
    path.write_text("api: {api_key_file: key}\nstorage: {dir: state}\nbad: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ["bad (line 3): unknown key"]
    path.write_text("api: {api_key_file: key}\nstorage: {dir: state}\n")
    assert load_config(path, env={}).storage.dir == tmp_path / "state"


# --- redaction -------------------------------------------------------------------------------


def test_redacted_yaml_hides_secrets_and_loads_again(tmp_path: Path) -> None:
    text = """\
        api: {api_key: the-api-key}
        cameras:
          - {name: door, rtsp: "rtsp://admin:cam-pass@192.0.2.1/s"}
        alerts:
          sinks:
            - {type: webhook, url: "https://h.example.com", secret: hook-secret}
            - {type: mqtt, host: broker, username: edge, password: mqtt-pass}
        """
    config = parse(text)
    out = redacted_yaml(config)
    for secret in ("the-api-key", "cam-pass", "hook-secret", "mqtt-pass"):
        assert secret not in out
    data = yaml.safe_load(out)
    assert data["api"]["api_key"] == "***"
    assert data["api"]["request_timeout"] == "10m"
    assert data["api"]["max_file_bytes"] == "8GB"
    assert data["cameras"][0]["rtsp"] == "rtsp://admin:***@192.0.2.1/s"
    assert data["alerts"]["sinks"][0]["secret"] == "***"
    assert data["alerts"]["sinks"][1]["password"] == "***"
    assert data["alerts"]["sinks"][1]["username"] == "edge"
    # Check-config output is itself a valid config, with the same non-secret values.
    again = parse_config(out, env={})
    assert again.api.request_timeout == config.api.request_timeout
    assert again.alerts.model_dump(exclude={"sinks"}) == config.alerts.model_dump(exclude={"sinks"})


# --- durations and sizes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1.5h", 5400.0),
        ("2H", 7200.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["5 minutes", "-1s", -1, "", "m", "1w", "1h30", "soon", True, float("nan")]
)
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match=r"500ms, 90s, 5m, 2h, 1d"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        (1024, 1024),
        ("100B", 100),
        ("100", 100),
        ("500MB", 500 * 10**6),
        ("20GB", 20 * 10**9),
        ("1.5GB", 1_500_000_000),
        ("1.1GB", 1_100_000_000),
        ("512KiB", 512 * 1024),
        ("2GiB", 2 * 2**30),
        ("2gib", 2 * 2**30),
        ("20 gb", 20 * 10**9),
        ("1T", 10**12),
    ],
)
def test_parse_size(value: str | int, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["20 gigs", "-1GB", "GB", "1.5", "1e9", "", True])
def test_parse_size_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [".", "..", "...", ".hidden", "-rf", "--help"])
def test_camera_names_of_dots_or_starting_with_a_dot_or_dash_are_refused(name: str) -> None:
    """`..` would put RTSP clips and snapshots outside storage.dir/clips, `-rf` would read as
    an option of a command sink's program."""
    assert problems(
        f'api: {{api_key: k}}\ncameras:\n  - {{name: "{name}", folder: /srv/nvr}}\n'
    ) == [
        f"cameras[0].name (line 3): a camera name may not start with '.' or '-' (it names"
        f" folders and is passed to commands), got {name!r}"
    ]
    assert parse('api: {api_key: k}\ncameras:\n  - {name: "gate.2-a", folder: /srv/nvr}\n')


def test_each_kind_of_camera_has_the_keys_of_a_camera_entry_of_its_kind_as_typed_there() -> None:
    """A camera is validated as a `CameraConfig` entry and held as its kind: the kinds must
    not drift from the entry (a key typed apart, or one the entry does not validate)."""
    entry = CameraConfig.model_fields
    for kind, other in ((FolderCamera, "rtsp"), (RtspCamera, "folder")):
        assert other not in kind.model_fields
        for key, field in kind.model_fields.items():
            if key in ("folder", "rtsp"):  # optional in the entry: one of the two is given
                assert field.is_required(), key
                continue
            assert (field.annotation, field.default) == (entry[key].annotation, entry[key].default)
            assert field.metadata == entry[key].metadata, key
    assert set(FolderCamera.model_fields) | set(RtspCamera.model_fields) == set(entry)
