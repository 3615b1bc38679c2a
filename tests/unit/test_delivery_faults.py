"""A sink that raises anything while delivering has failed that delivery, nothing more: the
alert is retried with backoff and `failed` after retry_max_age, and the worker goes on to the
next alert. Real ledger, real delivery stage; the sink is a small Sink of this test."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from edged.alerts.base import SimpleSink
from edged.alerts.delivery import AlertDelivery
from edged.ledger import outbox
from edged.ledger.outbox import Alert
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from tests.support.alerts import analyzed, result
from tests.support.waiting import eventually


class Exploding(SimpleSink):
    """Raises what `faults` says for the alerts of a person, delivers the others."""

    def __init__(self, faults: dict[str, BaseException]) -> None:
        self.name = "webhook"
        self.faults = faults
        self.delivered: list[str] = []

    async def deliver(self, alert: Alert) -> None:
        fault = self.faults.get(alert.person)
        if fault is not None:
            raise fault
        self.delivered.append(alert.person)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def queue(ledger: Ledger, person: str, event_at: float) -> None:
    clip = analyzed(ledger, result(person))
    alert = outbox.NewAlert(f"al_{person}", "webhook", clip.id, "porch", person, 0.9, event_at, "{")
    ledger.outbox.add([alert], 1000.0)


async def rows(db: AsyncLedger) -> dict[str, tuple[str, int, str | None]]:
    found = await db.call(
        db.ledger.db.rows, "SELECT person, state, attempts, last_error FROM alerts"
    )
    return {r["person"]: (r["state"], r["attempts"], r["last_error"]) for r in found}


@pytest.mark.parametrize(
    "fault",
    [
        ValueError("embedded null byte"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        KeyError("summary"),
        RuntimeError("boom \x00\x1b[31m"),
        OSError(7, "Argument list too long"),
    ],
    ids=["ValueError", "UnicodeEncodeError", "KeyError", "RuntimeError", "OSError"],
)
async def test_a_sink_that_raises_anything_fails_only_that_delivery(
    tmp_path: Path, fault: BaseException
) -> None:
    ledger = await asyncio.to_thread(Ledger, tmp_path)
    db = AsyncLedger(ledger)
    clock = Clock()
    # Mallory's alert is due first (the one a restart would meet first), Alice's after it.
    await asyncio.to_thread(queue, ledger, "Mallory", 10.0)
    await asyncio.to_thread(queue, ledger, "Alice", 20.0)
    sink = Exploding({"Mallory": fault})
    delivery = AlertDelivery(
        db,
        [sink],
        cooldown_s=0.0,
        retry_max_age_s=60.0,
        clock=clock,
        rng=random.Random(1),
        backoff_base_s=1.0,
        backoff_cap_s=5.0,
        poll_s=0.05,
    )
    task = asyncio.create_task(delivery.run(), name="delivery")
    try:

        async def retried() -> bool:
            assert not task.done(), task
            state = await rows(db)
            return sink.delivered == ["Alice"] and state["Mallory"][1] >= 1

        await eventually(retried, timeout_s=10, what="Alice sent, Mallory's delivery failed")
        state, attempts, error = (await rows(db))["Mallory"]
        assert state == "pending" and attempts >= 1
        assert error is not None and error.startswith(f"{type(fault).__name__}: ")
        assert error.isprintable(), error  # no NUL or escape reaches the outbox or the log

        clock.now += 61.0  # past retry_max_age: the next failure gives it up
        delivery.wake()

        async def given_up() -> bool:
            assert not task.done(), task
            return (await rows(db))["Mallory"][0] == "failed"

        await eventually(given_up, timeout_s=10, what="Mallory's alert failed")
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.aclose()
