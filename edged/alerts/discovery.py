"""MQTT topics of the MQTT sink, and Home Assistant's MQTT discovery for them.

Discovery announces one device for the box (the edged instance) with, per person, a
timestamp sensor "last seen" (the last sighting's JSON as attributes) and an image entity
(the last snapshot), and per camera a connectivity binary sensor. Every entity shares the
sink's availability topic, whose last will is "offline". Configs are retained, and sent again
when Home Assistant announces itself on `<discovery_prefix>/status`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edged import __version__
from edged.names import safe_name

ONLINE, OFFLINE = "online", "offline"
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


def object_id(text: str) -> str:
    """A discovery node or object id: Home Assistant accepts [A-Za-z0-9_-] only."""
    return _NOT_ID.sub("_", text.strip()).strip("_").lower() or "_"


@dataclass(frozen=True, slots=True)
class Topics:
    """The sink's topics under `topic_prefix`; names become one topic level each."""

    prefix: str

    @property
    def alerts(self) -> str:
        return f"{self.prefix}/alerts"

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    def person(self, name: str) -> str:
        return f"{self.prefix}/persons/{safe_name(name)}"

    def snapshot(self, name: str) -> str:
        return f"{self.person(name)}/snapshot"

    def camera_status(self, name: str) -> str:
        return f"{self.prefix}/cameras/{safe_name(name)}/status"


def discovery_configs(
    topics: Topics,
    discovery_prefix: str,
    instance: str,
    *,
    persons: Iterable[str] = (),
    cameras: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """(config topic, JSON payload) for every entity; payloads are compact and stable."""
    node = object_id(instance)
    common: dict[str, Any] = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": {
            "identifiers": [f"edged_{node}"],
            "name": f"edged {instance}",
            "manufacturer": "edged",
            "model": "camera edge daemon",
            "sw_version": __version__,
        },
        "origin": {"name": "edged", "sw_version": __version__},
    }
    configs: list[tuple[str, dict[str, Any]]] = []
    for person in persons:
        key = object_id(person)
        configs.append(
            (
                f"sensor/{node}/person_{key}_last_seen",
                {
                    "name": f"{person} last seen",
                    "unique_id": f"edged_{node}_person_{key}_last_seen",
                    "state_topic": topics.person(person),
                    "value_template": "{{ value_json.seen_at }}",
                    "json_attributes_topic": topics.person(person),
                    "device_class": "timestamp",
                    "icon": "mdi:account-eye",
                },
            )
        )
        configs.append(
            (
                f"image/{node}/person_{key}_snapshot",
                {
                    "name": f"{person} snapshot",
                    "unique_id": f"edged_{node}_person_{key}_snapshot",
                    "image_topic": topics.snapshot(person),
                    "content_type": "image/jpeg",
                },
            )
        )
    for camera in cameras:
        key = object_id(camera)
        configs.append(
            (
                f"binary_sensor/{node}/camera_{key}_status",
                {
                    "name": f"{camera} camera",
                    "unique_id": f"edged_{node}_camera_{key}_status",
                    "state_topic": topics.camera_status(camera),
                    "payload_on": ONLINE,
                    "payload_off": OFFLINE,
                    "device_class": "connectivity",
                },
            )
        )
    return [
        (f"{discovery_prefix}/{path}/config", json.dumps({**entity, **common}, sort_keys=True))
        for path, entity in configs
    ]
