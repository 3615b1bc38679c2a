"""The log sink: one WARNING line per alert, for journald and whoever tails it."""

from __future__ import annotations

import logging
from typing import Any

from edged.alerts.model import Alert

SINK_TYPE = "log"
log = logging.getLogger("edged.alert")


class LogSink:
    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        pass

    async def deliver(self, alert: Alert) -> None:
        payload = alert.payload
        log.warning(
            "ALERT person=%s camera=%s confidence=%.2f clip=%s at=%s alert_id=%s: %s",
            alert.person,
            alert.camera,
            alert.confidence,
            alert.clip_id,
            payload.get("seen_at"),
            alert.alert_id,
            payload.get("summary", ""),
        )

    async def aclose(self) -> None:
        pass


def create(config: Any, name: str) -> LogSink:
    return LogSink(name)
