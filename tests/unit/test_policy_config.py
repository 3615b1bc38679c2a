"""The config keys of the alert policy and the new sinks: parsed, checked, printed back."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from edged.config.model import (
    CommandSinkConfig,
    Config,
    ConfigError,
    MqttSinkConfig,
    parse_config,
    redacted_yaml,
)
from edged.service.wiring import alert_policy, known_cameras

BASE = """\
api: {api_key: k}
callback: {public_url: "https://edge.example.com"}
cameras:
  - {name: porch, folder: /nvr/porch}
  - {name: yard, folder: /nvr/yard}
"""


def parse(text: str) -> Config:
    return parse_config(BASE + textwrap.dedent(text), env={})


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.problems


FULL = """\
persons:
  - {name: Alice, url: "https://example.com/a.jpg", cameras: {only: [porch]}}
  - {name: Bob, url: "https://example.com/b.jpg", alert: never}
  - {name: Carol, url: "https://example.com/c.jpg", cameras: {except: [yard]}}
alerts:
  max_per_hour: 4
  unknown: true
  snapshot_retention: 3d
  quiet_hours:
    - {hours: "22:00-06:00", cameras: [yard], days: [fri, sat], timezone: Europe/Berlin}
    - {hours: "12:00-13:00"}
  sinks:
    - {type: webhook, url: "https://hooks.example.com/x", snapshot: url}
    - {type: mqtt, host: broker, discovery: true, discovery_prefix: ha, camera_offline_after: null}
    - {type: command, argv: [/bin/notify, "{person} on {camera} ({confidence})", "{snapshot}"]}
"""


def test_every_new_key_parses_into_the_policy() -> None:
    config = parse(FULL)
    alerts = config.alerts
    assert (alerts.max_per_hour, alerts.unknown, alerts.snapshot_retention) == (4, True, 259200.0)
    alice, bob, carol = config.persons
    assert alice.cameras is not None and alice.cameras.only == ("porch",)
    assert (bob.alert, carol.cameras and carol.cameras.except_) == ("never", ("yard",))
    mqtt = alerts.sinks[1]
    assert isinstance(mqtt, MqttSinkConfig) and mqtt.camera_offline_after is None
    assert (mqtt.discovery_prefix, alerts.sinks[0].snapshot) == ("ha", "url")  # type: ignore[union-attr]
    policy = alert_policy(config, ["Alice", "Bob", "Carol"])
    assert policy.unknown and policy.sink_names == ("webhook", "mqtt", "command")
    assert policy.skip_reason("yard", "Alice", 0.0) == "not an alerting camera for Alice"
    assert policy.skip_reason("porch", "Bob", 0.0) == "alert: never"
    assert policy.skip_reason("yard", "Carol", 0.0) == "not an alerting camera for Carol"
    assert [w.text for w in policy.quiet_hours] == ["22:00-06:00", "12:00-13:00"]
    assert known_cameras(config) == ("porch", "yard")


def test_defaults_change_nothing() -> None:
    config = parse("")
    alerts = config.alerts
    assert (alerts.max_per_hour, alerts.unknown, alerts.quiet_hours) == (None, False, ())
    assert alerts.snapshot_retention == 7 * 86400
    mqtt = parse("alerts: {sinks: [{type: mqtt, host: b}]}").alerts.sinks[0]
    assert isinstance(mqtt, MqttSinkConfig)
    assert (mqtt.discovery, mqtt.discovery_prefix, mqtt.camera_offline_after) == (
        False,
        "homeassistant",
        900.0,
    )
    webhook = parse("alerts: {sinks: [{type: webhook, url: 'https://h'}]}").alerts.sinks[0]
    assert webhook.snapshot == "inline"  # type: ignore[union-attr]


def test_policy_mistakes_are_reported_with_their_keys() -> None:
    text = """\
    persons:
      - {name: Alice, url: "https://e.com/a.jpg", cameras: {only: [porch], except: [yard]}}
      - {name: Bob, url: "https://e.com/b.jpg", cameras: {exept: [yard]}}
      - {name: Carol, url: "https://e.com/c.jpg", cameras: {only: [yrad]}, alert: sometimes}
    alerts:
      max_per_hour: 0
      quiet_hours:
        - {hours: "22:00 to 06:00"}
        - {hours: "25:00-06:00", days: [fri, satday]}
        - {cameras: [porch]}
    """
    assert problems(text) == [
        "persons[0].cameras (line 7): give either only or except, with a list of camera names",
        "persons[1].cameras (line 8): give either only or except, with a list of camera names",
        "persons[1].cameras.exept (line 8): unknown key; did you mean 'except'?",
        "persons[2].cameras.only[0] (line 9): no camera is named 'yrad'; did you mean 'yard'?",
        "persons[2].alert (line 9): expected one of 'always', 'never', got 'sometimes'",
        "alerts.max_per_hour (line 11): should be greater than or equal to 1, got 0",
        "alerts.quiet_hours[0].hours (line 13): '22:00 to 06:00':"
        " expected a range of hours such as 22:00-06:00",
        "alerts.quiet_hours[1].hours (line 14): '25:00-06:00': hours are 00:00 to 24:00",
        "alerts.quiet_hours[1].days[1] (line 14): expected one of 'mon', 'tue', 'wed', 'thu',"
        " 'fri', 'sat', 'sun', got 'satday'; did you mean 'sat'?",
        'alerts.quiet_hours[2].hours (line 15): missing: the window, e.g. hours: "22:00-06:00"',
    ]


def test_sink_mistakes_are_reported_with_their_keys(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    text = f"""\
    persons:
      - {{name: Unknown, url: "https://e.com/u.jpg"}}
    alerts:
      unknown: true
      sinks:
        - {{type: command, argv: [notify, "{{persn}}"]}}
        - {{type: command, argv: [notify, "{{person"]}}
        - {{type: mqtt, host: b, tls: true, ca_file: {tmp_path / "nope.pem"}}}
        - {{type: mqtt, host: b, ca_file: {ca}}}
        - {{type: webhook, url: "https://h", snapshot: link}}
    """
    found = problems(text)
    assert found[0] == "persons[0].name (line 7): 'unknown' is the name of alerts.unknown alerts"
    assert found[1].startswith(
        "alerts.sinks[0].argv (line 11): unknown field {persn} in '{persn}'; known: {person},"
    )
    assert found[1].endswith("did you mean 'person'?")
    assert found[2].startswith("alerts.sinks[1].argv (line 12): bad braces in '{person'")
    assert found[3] == f"alerts.sinks[2].ca_file (line 13): file not found: {tmp_path}/nope.pem"
    assert found[4] == "alerts.sinks[3].ca_file (line 14): only used with tls: true"
    assert found[5].startswith(
        "alerts.sinks[4].snapshot (line 15): expected one of 'inline', 'url', 'none', got 'link'"
    )
    assert len(found) == 6


def test_snapshot_links_need_a_public_url() -> None:
    with pytest.raises(ConfigError) as caught:
        sinks = "[{type: webhook, url: 'https://h', snapshot: url}]"
        parse_config(f"api: {{api_key: k}}\nalerts: {{sinks: {sinks}}}", env={})
    assert caught.value.problems == [
        "alerts.sinks[0].snapshot (line 2): url needs callback.public_url,"
        " where receivers fetch the picture"
    ]


def test_camera_names_are_not_checked_when_a_preset_names_them() -> None:
    text = """\
    api: {api_key: k}
    cameras: [{name: nvr, folder: /media/frigate, preset: frigate}]
    persons: [{name: Alice, url: "https://e.com/a.jpg", cameras: {only: [driveway]}}]
    alerts: {quiet_hours: [{hours: "22:00-06:00", cameras: [garden]}]}
    """
    config = parse_config(textwrap.dedent(text), env={})
    assert known_cameras(config) == ()


def test_command_fields_and_the_effective_config_round_trip() -> None:
    config = parse(FULL)
    command = config.alerts.sinks[2]
    assert isinstance(command, CommandSinkConfig)
    assert command.argv[1] == "{person} on {camera} ({confidence})"
    out = yaml.safe_load(redacted_yaml(config))
    assert out["persons"][2]["cameras"] == {"only": None, "except": ["yard"]}
    again = parse_config(redacted_yaml(config), env={})
    assert again.alerts == config.alerts and again.persons == config.persons


def test_unknown_alerts_need_reference_persons() -> None:
    assert problems("alerts: {unknown: true}\n") == [
        "alerts.unknown (line 6): needs at least one person: unknown means matching none of them"
    ]
