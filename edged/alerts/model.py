"""The values that travel through the alert outbox."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


def alert_id_for(install_id: str, clip_id: int, person: str) -> str:
    """Stable across retries, restarts and sinks: a receiver drops a repeat by this id."""
    digest = hashlib.sha256(f"{install_id}:{clip_id}:{person}".encode()).hexdigest()
    return f"al_{digest[:24]}"


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    sink: str
    clip_id: int
    camera: str
    person: str
    confidence: float
    event_at: float  # when the person was seen (clip start + moment), epoch seconds
    payload_json: str  # the body every sink sends, fixed when the alert is created
    attempts: int
    created_at: float

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_json)
        return value
