"""What every alert sink is: a name, `deliver()`, and a lifetime.

A new sink is one module in this package defining `SINK_TYPE` (the config's `type`)
and `create(config, index) -> Sink`; `edged.alerts.registry` finds it by itself.
"""

from __future__ import annotations

from typing import Protocol

from edged.alerts.model import Alert
from edged.errors import EdgedError


class DeliveryError(EdgedError):
    """A delivery did not happen; it is retried with backoff until alerts.retry_max_age."""


class Sink(Protocol):
    #: Stable name of this sink in the outbox ("webhook", "webhook#2"): keep config order.
    name: str

    async def start(self) -> None:
        """Open connections; called once before the first delivery."""

    async def deliver(self, alert: Alert) -> None:
        """Send the alert; raise DeliveryError when it did not arrive."""

    async def aclose(self) -> None:
        """Release what start() opened."""
