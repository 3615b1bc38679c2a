"""The log sink: one WARNING line per alert, for journald and whoever tails it."""

from __future__ import annotations

import logging

from edged.alerts.base import SimpleSink, SinkContext
from edged.config.sinks import LogSinkConfig
from edged.ledger.outbox import Alert
from edged.media.snapshot_store import SnapshotStore

SINK_TYPE = "log"
log = logging.getLogger("edged.alert")


class LogSink(SimpleSink):
    def __init__(self, name: str, snapshots: SnapshotStore | None = None) -> None:
        self.name = name
        self._snapshots = snapshots

    async def deliver(self, alert: Alert) -> None:
        body = alert.body
        snapshot = body.snapshot
        path = self._snapshots.path(snapshot.file) if snapshot and self._snapshots else None
        log.warning(
            "ALERT person=%s camera=%s confidence=%.2f clip=%s at=%s alert_id=%s snapshot=%s: %s",
            alert.person,
            alert.camera,
            alert.confidence,
            alert.clip_id,
            body.seen_at,
            alert.alert_id,
            path or "none",
            body.summary,
        )


def create(config: LogSinkConfig, name: str, context: SinkContext) -> LogSink:
    return LogSink(name, context.snapshots)
