"""What every alert sink is: a name, `deliver()`, and a lifetime.

A new sink is one module in this package defining `SINK_TYPE` (the config's `type`)
and `create(config, name, context) -> Sink`; `edged.alerts.registry` finds it by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edged.errors import EdgedError
from edged.ledger.outbox import Alert
from edged.ledger.thread import AsyncLedger
from edged.media.snapshot_store import SnapshotStore


class DeliveryError(EdgedError):
    """A delivery did not happen; it is retried with backoff until alerts.retry_max_age.

    `sink_down`: the sink as a whole is unavailable (a broker connection is lost), not this
    alert; the alert then waits, without backoff, until the sink is ready again."""

    def __init__(self, message: str, *, sink_down: bool = False) -> None:
        super().__init__(message)
        self.sink_down = sink_down


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What sinks may need beyond their own config section."""

    instance: str
    snapshots: SnapshotStore
    persons: tuple[str, ...] = ()  # names that can raise alerts, "unknown" included
    cameras: tuple[str, ...] = ()  # configured camera names
    db: AsyncLedger | None = field(default=None, compare=False)  # camera status, if needed


class Sink(Protocol):
    #: Stable name of this sink in the outbox ("webhook", "webhook#2"): keep config order.
    name: str

    async def start(self) -> None:
        """Open connections; called once before the first delivery."""

    async def run(self) -> None:
        """Background upkeep (a broker connection) until cancelled; returns at once if none."""

    async def wait_ready(self) -> None:
        """Returns when a delivery may succeed again after DeliveryError(sink_down=True)."""

    async def deliver(self, alert: Alert) -> None:
        """Send the alert; raise DeliveryError when it did not arrive."""

    async def aclose(self) -> None:
        """Release what start() opened."""


class SimpleSink:
    """For a sink with no connection to keep: nothing to open, upkeep, wait for or close.
    A subclass sets `name` and writes `deliver` (and overrides what it does need)."""

    name: str

    async def start(self) -> None:
        pass

    async def run(self) -> None:
        pass

    async def wait_ready(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
