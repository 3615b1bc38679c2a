"""The webhook sink: the alert as JSON, signed the Standard Webhooks way.

Headers: `webhook-id` (the alert id), `webhook-timestamp` (unix seconds, the time of this
try) and `webhook-signature` = `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
repeated as `X-Edged-Signature`: the Standard Webhooks scheme, so its libraries verify it
(`standardwebhooks.Webhook(secret).verify(body, headers)`), and refuse stale timestamps.

The key: a secret in the spec's form `whsec_<base64>` is base64-decoded (that is what the
libraries do with it); any other secret is used as its UTF-8 bytes (a library is then given
those bytes: `Webhook(secret.encode())`).

The alert's `snapshot` is sent as `snapshot:` says: inline (the JPEG in base64), url (a
signed link on the callback listener, valid for alerts.snapshot_retention) or none.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from edged.alert_body import Snapshot
from edged.alerts.base import DeliveryError, SimpleSink, SinkContext
from edged.config.sinks import WebhookSinkConfig
from edged.ledger.outbox import Alert
from edged.media.snapshot_store import SnapshotStore
from edged.signing import signing_key

SINK_TYPE = "webhook"


def sign(secret: str, alert_id: str, timestamp: int, body: bytes) -> str:
    message = f"{alert_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


SnapshotMode = Literal["inline", "url", "none"]


class WebhookSink(SimpleSink):
    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None,
        timeout_s: float,
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_mode: SnapshotMode = "none",
    ) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._snapshots = snapshots
        self._snapshot_mode = snapshot_mode

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def deliver(self, alert: Alert) -> None:
        assert self._session is not None, "start() first"
        body = await self._body(alert)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": alert.alert_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._secret:
            signature = sign(self._secret, alert.alert_id, timestamp, body)
            headers["webhook-signature"] = signature
            headers["X-Edged-Signature"] = signature
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"webhook answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__} {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _body(self, alert: Alert) -> bytes:
        """The stored payload, with its snapshot reference turned into what the receiver gets;
        the same bytes on every retry, so that the signature and dedup by id stay simple."""
        body = alert.body
        if body.snapshot is None:
            return alert.payload_json.encode()
        return body.rendered(await self._rendered(body.snapshot, alert.created_at)).encode()

    async def _rendered(self, snapshot: Snapshot, created_at: float) -> dict[str, Any] | None:
        store = self._snapshots
        if store is None or self._snapshot_mode == "none":
            return None
        picture = {"content_type": "image/jpeg", **snapshot.as_json()}
        del picture["file"]
        if self._snapshot_mode == "url":
            url, expires = store.url(snapshot.file, created_at)
            return {**picture, "url": url, "expires_at": _iso(expires)}
        data = await asyncio.to_thread(store.read, snapshot.file)
        if data is None:  # pruned, or lost: the alert still goes
            return None
        return {**picture, "data": base64.b64encode(data).decode()}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def create(config: WebhookSinkConfig, name: str, context: SinkContext) -> WebhookSink:
    secret = config.secret.get_secret_value() if config.secret is not None else None
    return WebhookSink(
        name,
        config.url,
        secret,
        config.timeout,
        snapshots=context.snapshots,
        snapshot_mode=config.snapshot,
    )
