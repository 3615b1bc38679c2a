"""The MQTT sink: alerts, last sightings, snapshots, camera status and availability.

Topics under `topic_prefix`, all QoS 1 (see edged/alerts/discovery.py for the names):

    <prefix>/alerts                      every alert, JSON
    <prefix>/persons/<person>            the person's last sighting, JSON, retained
    <prefix>/persons/<person>/snapshot   its picture, JPEG bytes, retained
    <prefix>/cameras/<camera>/status     online/offline, on change, retained
    <prefix>/availability                online; the last will says offline; retained

`run()` keeps the connection: reconnect with full-jitter backoff, a fresh client each time,
so that the client never re-sends a message on its own (the outbox alone decides what is
retried). While the broker is away, `deliver()` fails with sink_down and the alerts wait in
the outbox until `wait_ready()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from edged.aio import first_of, within
from edged.alerts.base import DeliveryError, SinkContext
from edged.alerts.camera_status import CameraWatch
from edged.alerts.discovery import OFFLINE, ONLINE, Topics, discovery_configs
from edged.backoff import full_jitter
from edged.config.sinks import MqttSinkConfig
from edged.ledger.outbox import Alert
from edged.names import safe_name

SINK_TYPE = "mqtt"
QOS = 1
log = logging.getLogger(__name__)

Message = tuple[str, bytes | str, bool]  # topic, payload, retain


@dataclass
class _Connection:
    client: aiomqtt.Client
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    cameras: dict[str, str] = field(default_factory=dict)  # status last published


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None  # never logged
    tls: bool = False
    ca_file: Path | None = None


class MqttSink:
    def __init__(
        self,
        name: str,
        broker: Broker,
        context: SinkContext,
        *,
        topic_prefix: str = "edged",
        discovery_prefix: str | None = None,  # None: no Home Assistant discovery
        camera_offline_after_s: float | None = 900.0,
        publish_timeout_s: float = 10.0,
        reconnect_base_s: float = 1.0,
        reconnect_cap_s: float = 60.0,
        status_poll_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._broker = broker
        self._context = context
        self._topics = Topics(topic_prefix)
        self._discovery_prefix = discovery_prefix
        self._timeout_s = publish_timeout_s
        self._backoff = (reconnect_base_s, reconnect_cap_s)
        self._status_poll_s = status_poll_s
        self._clock = clock
        self._watch = CameraWatch(
            context.cameras, offline_after_s=camera_offline_after_s, started_at=clock()
        )
        self._identifier = f"edged-{safe_name(context.instance)}-{secrets.token_hex(3)}"
        self._conn: _Connection | None = None
        self._ready = asyncio.Event()
        self._newest: dict[str, float] = {}  # per person: sighting time of its retained state
        self._connects = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def start(self) -> None:
        pass

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        tls: ssl.SSLContext | None = None
        failures = 0
        while True:
            connects = self._connects
            if self._broker.tls and tls is None:
                try:
                    tls = await asyncio.to_thread(self._tls_context)
                except (ssl.SSLError, OSError) as exc:
                    # A CA file that is not one: the alerts wait (the other sinks go on), and
                    # edged does not stop at every start.
                    failures += 1
                    log.error(
                        "mqtt sink=%s cannot set up TLS for %s:%d: %s",
                        self.name,
                        self._broker.host,
                        self._broker.port,
                        exc,
                    )
                    await asyncio.sleep(
                        full_jitter(failures, base_s=self._backoff[0], cap_s=self._backoff[1])
                    )
                    continue
            try:
                await self._connection(tls)
            except* aiomqtt.MqttError as group:
                # Backoff grows with attempts that never got in, not with lost connections.
                failures = 1 if self._connects > connects else failures + 1
                log.warning(
                    "mqtt broker unreachable sink=%s broker=%s:%d: %s",
                    self.name,
                    self._broker.host,
                    self._broker.port,
                    "; ".join(str(exc) or type(exc).__name__ for exc in group.exceptions),
                )
            delay = full_jitter(failures, base_s=self._backoff[0], cap_s=self._backoff[1])
            await asyncio.sleep(delay)

    async def deliver(self, alert: Alert) -> None:
        conn = self._conn
        if conn is None:
            raise DeliveryError("not connected to the MQTT broker", sink_down=True)
        # An older sighting delivered late (a retried alert) must not replace a newer one.
        newest = alert.event_at >= self._newest.get(alert.person, 0.0)
        messages = await asyncio.to_thread(self._messages, alert, newest)
        await self._send_or_lose(conn, messages)
        self._newest[alert.person] = max(alert.event_at, self._newest.get(alert.person, 0.0))

    async def aclose(self) -> None:
        pass

    # -- the connection ---------------------------------------------------------------------

    async def _connection(self, tls: ssl.SSLContext | None) -> None:
        """One connection, from connect until it is lost (MqttError) or cancelled."""
        will = aiomqtt.Will(self._topics.availability, OFFLINE, qos=QOS, retain=True)
        client = aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            username=self._broker.username,
            password=self._broker.password,
            identifier=self._identifier,
            will=will,
            tls_context=tls,
            keepalive=30,
            timeout=self._timeout_s,
        )
        async with client:
            self._connects += 1
            conn = _Connection(client)
            log.info("mqtt connected sink=%s broker=%s:%d", self.name, *self._address())
            try:
                await self._publish(conn, self._topics.availability, ONLINE, retain=True)
                await self._announce(conn, self._context.persons, self._context.cameras)
                self._conn = conn
                self._ready.set()
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._listen(conn), name=f"{self.name}:listen")
                    group.create_task(self._cameras(conn), name=f"{self.name}:cameras")
            except asyncio.CancelledError:
                await self._goodbye(conn)
                raise
            finally:
                self._ready.clear()
                self._conn = None
                conn.lost.set()

    async def _listen(self, conn: _Connection) -> None:
        """Until the connection is lost; re-announces when Home Assistant restarts."""
        if self._discovery_prefix is not None:
            await conn.client.subscribe(f"{self._discovery_prefix}/status", qos=QOS)
        async for message in conn.client.messages:
            if message.payload == b"online":
                await self._announce(conn, self._context.persons, tuple(conn.cameras))

    async def _cameras(self, conn: _Connection) -> None:
        """Camera status from the ledger, published when it changes (and on connect)."""
        db = self._context.db
        if db is None:
            return
        while True:
            activity = await db.call(db.ledger.reports.camera_activity, self._watch.after_clip_id)
            outages = await db.call(db.ledger.reports.camera_outages)
            statuses = self._watch.update(activity, outages, self._clock())
            new = [camera for camera in statuses if camera not in conn.cameras]
            await self._announce(conn, (), [c for c in new if c not in self._context.cameras])
            for camera, status in statuses.items():
                if conn.cameras.get(camera) != status:
                    topic = self._topics.camera_status(camera)
                    await self._publish(conn, topic, status, retain=True)
                    if camera in conn.cameras:
                        log.info("camera %s camera=%s sink=%s", status, camera, self.name)
                    conn.cameras[camera] = status
            await asyncio.sleep(self._status_poll_s)

    async def _announce(
        self, conn: _Connection, persons: Sequence[str], cameras: Sequence[str]
    ) -> None:
        if self._discovery_prefix is None or not (persons or cameras):
            return
        configs = discovery_configs(
            self._topics,
            self._discovery_prefix,
            self._context.instance,
            persons=persons,
            cameras=cameras,
        )
        for topic, payload in configs:
            await self._publish(conn, topic, payload, retain=True)

    async def _goodbye(self, conn: _Connection) -> None:
        """A clean stop says offline itself: the broker sends the will only on a lost link."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await within(self._publish(conn, self._topics.availability, OFFLINE, retain=True), 2.0)

    async def _publish(
        self, conn: _Connection, topic: str, payload: bytes | str, *, retain: bool
    ) -> None:
        await conn.client.publish(topic, payload, qos=QOS, retain=retain, timeout=self._timeout_s)

    # -- alerts -----------------------------------------------------------------------------

    def _messages(self, alert: Alert, newest: bool) -> list[Message]:
        """Blocking (reads the snapshot): what one alert publishes, picture first, so that
        whoever reacts to the alert finds the picture already there."""
        snapshot = alert.body.snapshot
        picture = self._context.snapshots.read(snapshot.file) if snapshot else None
        topic = self._topics.snapshot(alert.person)
        reference = None
        if snapshot and picture:
            reference = {"topic": topic, **snapshot.as_json()}
            del reference["file"]  # a path in edged's storage, not the receiver's business
        body = alert.body.rendered(reference)
        messages: list[Message] = []
        if newest:
            if picture is not None:
                messages.append((topic, picture, True))
            messages.append((self._topics.person(alert.person), body, True))
        messages.append((self._topics.alerts, body, False))
        return messages

    async def _send_or_lose(self, conn: _Connection, messages: list[Message]) -> None:
        """Publish and wait for the broker's acknowledgements, unless the connection is lost
        first: aiomqtt would otherwise wait the whole timeout for an answer that never comes."""
        work = asyncio.create_task(self._send(conn, messages))
        await first_of(work, conn.lost.wait())
        if work.cancelled():
            raise DeliveryError("connection to the MQTT broker lost", sink_down=True)
        error = work.exception()
        if error is not None:
            raise DeliveryError(
                f"MQTT publish failed: {error}", sink_down=conn.lost.is_set()
            ) from error

    async def _send(self, conn: _Connection, messages: list[Message]) -> None:
        for topic, payload, retain in messages:
            await self._publish(conn, topic, payload, retain=retain)

    def _address(self) -> tuple[str, int]:
        return self._broker.host, self._broker.port

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = str(self._broker.ca_file) if self._broker.ca_file else None
        return ssl.create_default_context(cafile=ca_file)


def create(config: MqttSinkConfig, name: str, context: SinkContext) -> MqttSink:
    password = config.password.get_secret_value() if config.password is not None else None
    broker = Broker(config.host, config.port, config.username, password, config.tls, config.ca_file)
    return MqttSink(
        name,
        broker,
        context,
        topic_prefix=config.topic_prefix.rstrip("/"),
        discovery_prefix=config.discovery_prefix.rstrip("/") if config.discovery else None,
        camera_offline_after_s=config.camera_offline_after,
        publish_timeout_s=10.0,
    )
