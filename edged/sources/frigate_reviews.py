"""Frigate's review items, heard on the broker Frigate uses (`upload: frigate`).

One subscriber per camera with `upload: frigate`: it connects to `frigate.host`, subscribes
to `<topic_prefix>/reviews`, stores each review item it reads in the ledger (a restart still
knows them) and wakes the gate. A message that is not a review item is refused (counted,
logged once a minute) and changes nothing. `connected_since` tells the gate whether it may
have missed a review: a recording is only kept back for want of a review while the
subscriber was connected for the whole of the recording's time.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

import aiomqtt

from edged.backoff import full_jitter
from edged.config.frigate import FrigateGateConfig
from edged.ledger.thread import AsyncLedger
from edged.sources.frigate_messages import ReviewMessageError, parse_review

log = logging.getLogger(__name__)

#: Reviews that ended this long ago judge no recording any more.
KEEP_REVIEWS_S = 86400.0
#: A refused message is logged at most this often (anyone on the broker can send them).
REFUSED_LOG_S = 60.0


class FrigateReviews:
    def __init__(
        self,
        db: AsyncLedger,
        camera: str,
        config: FrigateGateConfig,
        *,
        on_review: Callable[[], None],
        clock: Callable[[], float] = time.time,
        backoff_s: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self._db = db
        self.camera = camera
        self._config = config
        self._on_review = on_review
        self._clock = clock
        self._backoff = backoff_s
        self.connected_since: float | None = None
        self.refused = 0
        self._refused_logged_at = float("-inf")

    @property
    def topic(self) -> str:
        return f"{self._config.topic_prefix}/reviews"

    async def run(self) -> None:
        tls = await asyncio.to_thread(self._tls_context) if self._config.tls else None
        failures = 0
        while True:
            try:
                await self._connection(tls)
                failures = 0
            except aiomqtt.MqttError as exc:
                failures += 1
                log.warning(
                    "frigate broker unreachable camera=%s broker=%s:%d: %s; recordings are"
                    " sent without reviews until it is back",
                    self.camera,
                    self._config.host,
                    self._config.port,
                    exc,
                )
            finally:
                self.connected_since = None
            await asyncio.sleep(
                full_jitter(failures, base_s=self._backoff[0], cap_s=self._backoff[1])
            )

    async def _connection(self, tls: ssl.SSLContext | None) -> None:
        password = self._config.password
        client = aiomqtt.Client(
            self._config.host,
            self._config.port,
            username=self._config.username,
            password=password.get_secret_value() if password is not None else None,
            tls_context=tls,
            keepalive=30,
        )
        async with client:
            await client.subscribe(self.topic, qos=1)
            self.connected_since = self._clock()
            log.info(
                "frigate reviews camera=%s broker=%s:%d topic=%s",
                self.camera,
                self._config.host,
                self._config.port,
                self.topic,
            )
            self._on_review()  # waiting recordings may now be judged
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    await self._heard(bytes(payload))
                else:
                    self._refuse("not a binary payload")

    async def _heard(self, payload: bytes) -> None:
        try:
            review = parse_review(payload)
        except ReviewMessageError as exc:
            self._refuse(str(exc))
            return
        ledger = self._db.ledger
        await self._db.call(ledger.reviews.upsert, review)
        await self._db.call(ledger.reviews.prune, self._clock() - KEEP_REVIEWS_S)
        self._on_review()

    def _refuse(self, reason: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= REFUSED_LOG_S:
            self._refused_logged_at = now
            log.warning(
                "frigate reviews camera=%s: a message on %s is not a review item (%d so far): %s",
                self.camera,
                self.topic,
                self.refused,
                reason,
            )

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = str(self._config.ca_file) if self._config.ca_file else None
        return ssl.create_default_context(cafile=ca_file)
