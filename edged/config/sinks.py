"""The config models of the alert sinks (`alerts.sinks`), one per `type:`; each sink module
of edged/alerts/ takes its own (`create(config: WebhookSinkConfig, ...)`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from edged.config.alerts import CommandArgv
from edged.config.base import Section
from edged.config.broker import BrokerConfig, TopicPrefix
from edged.config.fields import Argv, HttpUrl, Secret, Text, Timeout
from edged.config.problems import Problem
from edged.config.units import Duration
from edged.signing import SECRET_PREFIX, signing_key


class WebhookSinkConfig(Section):
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


class MqttSinkConfig(BrokerConfig):
    """Publishes each alert to an MQTT broker under topic_prefix."""

    type: Literal["mqtt"] = "mqtt"
    topic_prefix: TopicPrefix = "edged"
    discovery: bool = False
    discovery_prefix: Text = "homeassistant"
    #: A camera that edged has not heard from for this long is shown offline (None: only
    #: open outages count).
    camera_offline_after: Duration | None = 900.0


class CommandSinkConfig(Section):
    """Runs a program per alert; "{person}"-style fields in argv are filled in."""

    type: Literal["command"] = "command"
    argv: Annotated[Argv, CommandArgv]
    timeout: Timeout = 30.0


class LogSinkConfig(Section):
    """Writes each alert to the log."""

    type: Literal["log"] = "log"


SinkConfig = Annotated[
    WebhookSinkConfig | MqttSinkConfig | CommandSinkConfig | LogSinkConfig,
    Field(discriminator="type"),
]
