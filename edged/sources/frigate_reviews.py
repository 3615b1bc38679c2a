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
from edged.clip import ClipState
from edged.config.frigate import FrigateGateConfig
from edged.ledger.reviews import Review
from edged.ledger.thread import AsyncLedger
from edged.sources.frigate_messages import ReviewMessageError, parse_review
from edged.sources.review_rules import rescued

log = logging.getLogger(__name__)

#: Reviews that ended this long ago judge no recording any more.
KEEP_REVIEWS_S = 86400.0
#: A refused message is logged at most this often (anyone on the broker can send them).
REFUSED_LOG_S = 60.0
#: Old reviews are deleted at most this often.
PRUNE_EVERY_S = 60.0
#: Recordings kept back are looked for among the camera's clips found this close to a review.
RESCUE_WITHIN_S = 3600.0
#: Messages waiting to be read: a flood from the broker is dropped beyond this, not kept.
MAX_QUEUED_MESSAGES = 1000


class FrigateReviews:
    def __init__(
        self,
        db: AsyncLedger,
        camera: str,
        config: FrigateGateConfig,
        *,
        on_review: Callable[[], None],
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        backoff_s: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self._db = db
        self.camera = camera
        self._config = config
        self._on_review = on_review
        self._on_queued = on_queued
        self._clock = clock
        self._backoff = backoff_s
        self.connected_since: float | None = None
        self.refused = 0
        self._refused_logged_at = float("-inf")
        self._pruned_at = float("-inf")

    @property
    def broker(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    @property
    def topic(self) -> str:
        return f"{self._config.topic_prefix}/reviews"

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                tls = await asyncio.to_thread(self._tls_context) if self._config.tls else None
                await self._connection(tls)
                failures = 0
            # What a broker, a network or a CA file can do wrong ends this connection, never
            # the gate (and with it the daemon): recordings are sent without reviews meanwhile.
            except (aiomqtt.MqttError, ssl.SSLError, OSError, ValueError) as exc:
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
            max_queued_incoming_messages=MAX_QUEUED_MESSAGES,
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
            review = parse_review(payload, self._clock())
        except ReviewMessageError as exc:
            self._refuse(str(exc))
            return
        ledger = self._db.ledger
        await self._db.call(ledger.reviews.upsert, review)
        now = self._clock()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            await self._db.call(ledger.reviews.prune, now - KEEP_REVIEWS_S)
        # The review as stored: its objects and end may come from several messages.
        stored = await self._db.call(ledger.reviews.get, review.id)
        if stored is not None:
            await self._rescue(stored, now)
        self._on_review()

    async def _rescue(self, review: Review, now: float) -> None:
        """Recordings kept back for want of a review that this one covers go after all."""
        ledger = self._db.ledger
        nearby = await self._db.call(
            ledger.activity.neighbours, review.camera, review.start_at, RESCUE_WITHIN_S
        )
        sent_to = ClipState.IN_EVENT if self._config.events else ClipState.QUEUED
        for clip_id in rescued(self._config, review, nearby, now):
            reason = f"Frigate review {review.id} heard after it was kept back"
            if await self._db.call(ledger.activity.rolled_in, clip_id, reason, sent_to=sent_to):
                log.info("frigate camera=%s clip=%s: sent after all", review.camera, clip_id)
                self._on_queued()

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
