"""The webhook sink: the alert as JSON, signed the Standard Webhooks way.

Headers: `webhook-id` (the alert id), `webhook-timestamp` (unix seconds) and
`webhook-signature` = `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")),
repeated as `X-Edged-Signature`. A receiver recomputes it and refuses stale timestamps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import aiohttp

from edged.alerts.base import DeliveryError
from edged.alerts.model import Alert

SINK_TYPE = "webhook"


def sign(secret: str, alert_id: str, timestamp: int, body: bytes) -> str:
    message = f"{alert_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookSink:
    def __init__(self, name: str, url: str, secret: str | None, timeout_s: float) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def deliver(self, alert: Alert) -> None:
        assert self._session is not None, "start() first"
        body = alert.payload_json.encode()
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


def create(config: Any, name: str) -> WebhookSink:
    secret = config.secret.get_secret_value() if config.secret is not None else None
    return WebhookSink(name, config.url, secret, config.timeout)
