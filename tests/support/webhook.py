"""A real webhook receiver (the `receiver` fixture): every POST kept with the status it got,
its Standard Webhooks signature checked with the test secret.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from edged.aio import serving
from edged.alerts.webhook import sign

SECRET = "s3cret"


@dataclass(frozen=True)
class Hit:
    """One POST the receiver got, and the status it answered."""

    headers: CIMultiDict[str]
    body: bytes
    status: int

    @property
    def alert(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def signature_ok(self) -> bool:
        expected = sign(
            SECRET, self.headers["webhook-id"], int(self.headers["webhook-timestamp"]), self.body
        )
        return expected == self.headers.get("X-Edged-Signature")


class Receiver:
    """A webhook endpoint on 127.0.0.1:0 that records every request. It answers 503 while
    `fail_next` is above zero (counting down), and to alerts of the clips in `failing_clips`."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.fail_next = 0
        self.failing_clips: set[int] = set()
        self.url = ""

    @property
    def delivered(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.status == 200]

    def delivered_ids(self) -> Counter[str]:
        return Counter(hit.alert["alert_id"] for hit in self.delivered)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 200
        if self.fail_next > 0:
            self.fail_next -= 1
            status = 503
        elif json.loads(body)["clip"]["id"] in self.failing_clips:
            status = 503
        self.hits.append(Hit(request.headers.copy(), body, status))
        return web.json_response({"ok": status == 200}, status=status)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Receiver]:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        async with serving(app, "127.0.0.1", 0, shutdown_timeout_s=5.0) as runner:
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
            yield self


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver().serve() as hook:
        yield hook
