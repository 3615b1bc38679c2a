"""The broker goes away mid-run: alerts wait in the outbox and each arrives once after it is back.

The outbox worker and the MQTT sink run here against a real ledger and a real mosquitto, with
small reconnect timings. The broker is killed (SIGKILL) and restarted; while it comes back it
refuses anonymous clients, so the watcher is subscribed again before edged can publish, and
no alert can slip by unseen.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edged.alerts.analyzer import build_alerts
from edged.alerts.base import SinkContext
from edged.alerts.delivery import AlertDelivery
from edged.alerts.mqtt import Broker, MqttSink
from edged.alerts.policy import AlertPolicy
from edged.clip import NewClip
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.snapshot_store import SnapshotStore
from edged.results.matcher import Match
from tests.support.mqtt import Mosquitto, Watcher, watching
from tests.support.waiting import eventually

# skipped without mosquitto on a workstation, failed under CI=true
pytestmark = pytest.mark.usefixtures("mosquitto_installed")


PREFIX = "outage"
POLICY = AlertPolicy(("Alice",), 0.5, ("mqtt",), "box")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncLedger]:
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    opened = AsyncLedger(ledger)
    yield opened
    await opened.aclose()


async def enqueue(db: AsyncLedger, name: str) -> str:
    """An alert for Alice in a new clip, queued as the analyzer would; returns its id."""

    def write() -> str:
        ledger = db.ledger
        clip, _ = ledger.clips.add(NewClip("gate", Path(f"/nvr/{name}.mp4"), 10, duration_s=4.0))
        match = Match("Alice", True, 0.9, (1.0,), "json", "")
        now = time.time()
        alerts = build_alerts(clip, f"Alice at the gate ({name}).", [match], POLICY, "i", now)
        ledger.outbox.add(alerts, now)
        return alerts[0].alert_id

    return await asyncio.to_thread(write)


async def rows(db: AsyncLedger) -> list[dict[str, Any]]:
    found = await db.call(db.ledger.db.rows, "SELECT * FROM alerts ORDER BY event_at, alert_id")
    return [dict(row) for row in found]


def alert_ids(*watchers: Watcher) -> Counter[str]:
    return Counter(seen.json()["alert_id"] for w in watchers for seen in w.on(f"{PREFIX}/alerts"))


async def test_alerts_wait_out_a_broker_outage_and_arrive_once(
    tmp_path: Path, db: AsyncLedger
) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    await broker.start()
    context = SinkContext("box", SnapshotStore(tmp_path / "snapshots", 60.0), ("Alice",), (), db)
    sink = MqttSink(
        "mqtt",
        Broker("127.0.0.1", broker.port),
        context,
        topic_prefix=PREFIX,
        reconnect_base_s=0.05,
        reconnect_cap_s=0.2,
        status_poll_s=0.2,
    )
    delivery = AlertDelivery(db, [sink], cooldown_s=0.0, retry_max_age_s=3600.0, poll_s=0.2)
    running = asyncio.create_task(delivery.run(), name="alerts")
    try:
        async with watching(broker.port) as before:
            await eventually(lambda: sink.connected, what="edged connected")
            first = await enqueue(db, "one")
            delivery.wake()
            await eventually(lambda: alert_ids(before) == Counter([first]), what="first alert")

            await broker.kill()
            await eventually(lambda: not sink.connected, what="edged noticing the outage")
        waiting = [await enqueue(db, "two"), await enqueue(db, "three")]
        delivery.wake()

        async def held_in_the_outbox() -> bool:
            pending = [r for r in await rows(db) if r["alert_id"] in waiting]
            return all(r["state"] == "pending" for r in pending) and any(
                "not connected" in (r["last_error"] or "") for r in pending
            )

        await eventually(held_in_the_outbox, what="alerts held while the broker is down")
        assert not running.done()

        # Back, but refusing edged until the watcher is subscribed again.
        await broker.start(anonymous=False)
        async with watching(broker.port) as after:
            await broker.allow_anonymous()

            async def all_sent() -> bool:
                return all(r["state"] == "sent" for r in await rows(db))

            await eventually(all_sent, what="every alert sent after the broker is back")
            await eventually(
                lambda: alert_ids(after) == Counter(waiting), what="the held alerts arrive"
            )
        assert alert_ids(before, after) == Counter([first, *waiting])  # each exactly once
        assert [seen.payload for seen in after.on(f"{PREFIX}/availability")][-1] == b"online"
        retained = after.last(f"{PREFIX}/persons/Alice")
        assert retained is not None and retained.json()["alert_id"] == waiting[-1]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if broker.process is not None and broker.process.returncode is None:
            broker.process.kill()
            await broker.process.wait()
