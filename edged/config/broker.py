"""An MQTT broker edged connects to: for the MQTT alert sink, and for Frigate's reviews."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from edged.config.alerts import existing_file
from edged.config.base import Section
from edged.config.fields import ConfigPath, Secret, Text
from edged.config.problems import Problem


def _topic_prefix(value: str) -> str:
    # Wildcards and NUL make every topic under it an invalid name for MQTT, and paho refuses
    # them only when edged subscribes or publishes: a typo would stop edged at every start.
    bad = sorted({char for char in value if char in "#+\x00"})
    if bad:
        raise ValueError(f"a topic prefix may not hold {' '.join(map(repr, bad))}, got {value!r}")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError(f"a topic prefix neither starts nor ends with '/', got {value!r}")
    return value


#: The start of the topics edged uses: MQTT topic levels, no wildcards.
TopicPrefix = Annotated[Text, AfterValidator(_topic_prefix)]


class BrokerConfig(Section):
    secret_files = ("password",)

    host: Text
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: Secret | None = None
    tls: bool = False
    ca_file: Annotated[ConfigPath, AfterValidator(existing_file)] | None = None

    @classmethod
    def prepare(cls, data: dict[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems = super().prepare(data, context)
        if data.get("ca_file") is not None and data.get("tls") is not True:
            problems.append((("ca_file",), "only used with tls: true"))
        return problems
