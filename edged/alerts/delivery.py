"""The outbox stage: one worker per sink, so a sink that is down never delays the others.

Before sending, a worker applies the limits that depend on what was actually sent: the
cooldown and alerts.max_per_hour, both per sink, camera and person, by sighting time.

A sink that raises anything while delivering has failed that delivery: the alert is retried
with backoff and `failed` after alerts.retry_max_age. No alert, whatever its text, can end
the worker (and with it the process, which would meet the same alert first on restart).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence

from edged.aio import woken
from edged.alerts.base import DeliveryError, Sink
from edged.alerts.policy import HOUR_S, over_hourly_limit
from edged.backoff import full_jitter
from edged.ledger import outbox
from edged.ledger.outbox import Alert
from edged.ledger.thread import AsyncLedger
from edged.results.verdict import one_line

log = logging.getLogger(__name__)


class AlertDelivery:
    def __init__(
        self,
        db: AsyncLedger,
        sinks: Sequence[Sink],
        *,
        cooldown_s: float,
        retry_max_age_s: float,
        max_per_hour: int | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backoff_base_s: float = 2.0,
        backoff_cap_s: float = 300.0,
        poll_s: float = 1.0,
    ) -> None:
        self._db = db
        self._sinks = list(sinks)
        self._cooldown_s = cooldown_s
        self._max_per_hour = max_per_hour
        self._retry_max_age_s = retry_max_age_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._poll_s = poll_s
        self._wakes = {sink.name: asyncio.Event() for sink in self._sinks}

    def wake(self) -> None:
        for event in self._wakes.values():
            event.set()

    async def run(self) -> None:
        try:
            for sink in self._sinks:
                await sink.start()
            async with asyncio.TaskGroup() as group:
                for sink in self._sinks:
                    group.create_task(sink.run(), name=f"alerts:{sink.name}:upkeep")
                    group.create_task(self._worker(sink), name=f"alerts:{sink.name}")
        finally:
            for sink in self._sinks:
                await sink.aclose()

    async def _worker(self, sink: Sink) -> None:
        ledger = self._db.ledger
        while True:
            alert = await self._db.call(ledger.outbox.next_due, sink.name, self._clock())
            if alert is None:
                await self._idle(sink)
                continue
            limit = await self._limited(alert)
            if limit is not None:
                await self._db.call(
                    ledger.outbox.mark, alert, outbox.SUPPRESSED, self._clock(), error=limit
                )
                log.info(
                    "alert suppressed by %s person=%s camera=%s clip=%s sink=%s",
                    limit,
                    alert.person,
                    alert.camera,
                    alert.clip_id,
                    sink.name,
                )
                continue
            try:
                await sink.deliver(alert)
            except DeliveryError as exc:
                if exc.sink_down:
                    await self._sink_down(alert, sink, _reason(exc))
                else:
                    await self._failed(alert, sink, _reason(exc))
                continue
            except Exception as exc:  # any fault of one alert fails only that delivery
                log.exception(
                    "alert delivery raised camera=%s clip=%s sink=%s",
                    alert.camera,
                    alert.clip_id,
                    sink.name,
                )
                await self._failed(alert, sink, _reason(exc, unexpected=True))
                continue
            await self._db.call(ledger.outbox.mark, alert, outbox.SENT, self._clock())
            log.info(
                "alert sent person=%s camera=%s clip=%s sink=%s alert_id=%s",
                alert.person,
                alert.camera,
                alert.clip_id,
                sink.name,
                alert.alert_id,
            )

    async def _limited(self, alert: Alert) -> str | None:
        """ "cooldown" or "max_per_hour" when the alert must not be sent."""
        outbox_rows = self._db.ledger.outbox
        if await self._db.call(outbox_rows.in_cooldown, alert, self._cooldown_s):
            return "cooldown"
        if self._max_per_hour is not None:
            sent = await self._db.call(outbox_rows.sent_around, alert, HOUR_S)
            if over_hourly_limit(sent, alert.event_at, self._max_per_hour):
                return "max_per_hour"
        return None

    async def _sink_down(self, alert: Alert, sink: Sink, reason: str) -> None:
        """The sink itself is unavailable: the alert stays due, and the worker waits for the
        sink rather than backing off, so the backlog goes out as soon as it is back."""
        now = self._clock()
        if now - alert.created_at > self._retry_max_age_s:
            await self._failed(alert, sink, reason)
            return
        await self._db.call(self._db.ledger.outbox.mark, alert, outbox.PENDING, now, error=reason)
        log.warning(
            "alert waits for its sink camera=%s clip=%s sink=%s: %s",
            alert.camera,
            alert.clip_id,
            sink.name,
            reason,
        )
        await sink.wait_ready()

    async def _failed(self, alert: Alert, sink: Sink, reason: str) -> None:
        now = self._clock()
        ledger = self._db.ledger
        if now - alert.created_at > self._retry_max_age_s:
            await self._db.call(ledger.outbox.mark, alert, outbox.FAILED, now, error=reason)
            log.error(
                "alert given up after %d attempts camera=%s clip=%s sink=%s: %s",
                alert.attempts + 1,
                alert.camera,
                alert.clip_id,
                sink.name,
                reason,
            )
            return
        delay = full_jitter(
            alert.attempts + 1,
            base_s=self._backoff_base_s,
            cap_s=self._backoff_cap_s,
            rng=self._rng,
        )
        await self._db.call(
            ledger.outbox.mark,
            alert,
            outbox.PENDING,
            now,
            error=reason,
            next_attempt_at=now + delay,
        )
        log.warning(
            "alert delivery failed camera=%s clip=%s sink=%s retry_in=%.1fs: %s",
            alert.camera,
            alert.clip_id,
            sink.name,
            delay,
            reason,
        )

    async def _idle(self, sink: Sink) -> None:
        due = await self._db.call(self._db.ledger.outbox.next_wakeup, sink.name)
        timeout = self._poll_s
        if due is not None:
            timeout = max(0.0, min(timeout, due - self._clock()))
        await woken(self._wakes[sink.name], timeout)


def _reason(exc: BaseException, *, unexpected: bool = False) -> str:
    """The error as one printable line for the outbox and the log (it may quote the alert)."""
    text = one_line(str(exc), 500)
    return f"{type(exc).__name__}: {text}" if unexpected else text
