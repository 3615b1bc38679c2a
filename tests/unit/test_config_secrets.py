"""Secrets a config holds: all of them reach the log redactor; a config file readable by other
users that holds one draws a warning from every command that reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edged.config.model import load_config
from edged.config.secrets import config_secrets, exposed_secrets

CONFIG = """\
api:
  api_key: {api_key}
storage:
  dir: {state}
cameras:
  - name: door
    rtsp: rtsp://admin:p%40ss-word9@192.0.2.10/stream1
    upload: activity
    activity: {{rtsp: "rtsp://viewer:sub-pw-77@192.0.2.10/stream2"}}
alerts:
  sinks:
    - type: webhook
      url: https://hooks.example.com/edged
      secret: whsec-4f2a9b
    - type: mqtt
      host: 127.0.0.1
      password_file: mqtt.pass
"""


def write_config(tmp_path: Path, api_key: str = "sk-test-8c1d77") -> Path:
    (tmp_path / "mqtt.pass").write_text("mqtt-pw-31e5\n")
    path = tmp_path / "edged.yaml"
    path.write_text(CONFIG.format(api_key=api_key, state=tmp_path / "state"))
    return path


def test_every_secret_is_found(tmp_path: Path) -> None:
    found = config_secrets(load_config(write_config(tmp_path)))
    assert found["api.api_key"] == "sk-test-8c1d77"
    assert found["alerts.sinks[0].secret"] == "whsec-4f2a9b"
    assert found["alerts.sinks[1].password"] == "mqtt-pw-31e5"
    assert found["cameras[0].rtsp"] == "p%40ss-word9"
    assert found["cameras[0].rtsp (decoded)"] == "p@ss-word9"
    assert found["cameras[0].activity.rtsp"] == "sub-pw-77"


def test_a_world_readable_file_exposes_only_the_secrets_written_in_it(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.chmod(0o644)
    # The MQTT password is in another file, so it is not exposed by this one.
    assert exposed_secrets(path, load_config(path)) == [
        "alerts.sinks[0].secret",
        "api.api_key",
        "cameras[0].activity.rtsp",
        "cameras[0].rtsp",
    ]
    path.chmod(0o640)
    assert exposed_secrets(path, load_config(path)) == []


def test_a_secret_from_the_environment_is_not_in_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, api_key="${EDGED_TEST_KEY}")
    path.chmod(0o644)
    config = load_config(path, env={"EDGED_TEST_KEY": "sk-from-env-1234"})
    assert "api.api_key" not in exposed_secrets(path, config)


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged.cli", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_check_config_warns_about_a_readable_file_and_never_prints_a_secret(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    path.chmod(0o644)
    readable = check_config(path)
    assert "readable by other users" in readable.stderr
    assert "api.api_key" in readable.stderr
    path.chmod(0o600)
    private = check_config(path)
    assert "readable by other users" not in private.stderr
    for output in (readable.stdout + readable.stderr, private.stdout + private.stderr):
        for secret in ("sk-test-8c1d77", "whsec-4f2a9b", "mqtt-pw-31e5", "p%40ss-word9"):
            assert secret not in output
