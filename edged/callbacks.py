"""The public callback listener: results per clip, and the person images the service fetches.

This is edged's only internet-facing socket, so it answers 404 to everything it does
not know, compares tokens in constant time, caps bodies, and touches the ledger only
for a correctly tokened callback of a known clip.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
from collections.abc import Callable

from aiohttp import web

from edged.alerts.snapshot_store import SnapshotStore
from edged.backoff import full_jitter
from edged.envelope import parse_envelope
from edged.ledger_async import AsyncLedger
from edged.persons import PersonDirectory

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
#: A callback body must carry at least one of these to be read as a result or an error.
ENVELOPE_KEYS = frozenset({"code", "success", "failed", "data", "text"})
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}

ResultHook = Callable[[int], None]


def _not_found() -> web.Response:
    return web.json_response({"error": "not found"}, status=404)


class CallbackApp:
    def __init__(
        self,
        db: AsyncLedger,
        persons: PersonDirectory | None = None,
        *,
        max_attempts: int = 5,
        on_result: ResultHook | None = None,
        rng: random.Random | None = None,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self._db = db
        self._persons = persons
        self._max_attempts = max_attempts
        self._on_result = on_result
        self._rng = rng or random.Random()
        self._snapshots = snapshots

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/callbacks/{clip_id}/{token}", self._callback)
        app.router.add_route("*", "/persons/{token}/{name}", self._person_image)
        app.router.add_route("*", "/snapshots/{camera}/{name}", self._snapshot)
        app.router.add_route("*", "/{tail:.*}", self._anything_else)
        return app

    async def _anything_else(self, request: web.Request) -> web.Response:
        return _not_found()

    async def _callback(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _not_found()
        clip_id_text = request.match_info["clip_id"]
        if not clip_id_text.isdigit() or len(clip_id_text) > 18:
            return _not_found()
        clip_id = int(clip_id_text)
        clip = await self._db.run(self._db.ledger.get, clip_id)
        expected = clip.callback_token if clip is not None else None
        # Compare even when the clip is unknown, so timing does not tell which ids exist.
        given = request.match_info["token"].encode()
        if not hmac.compare_digest(given, (expected or "\0" * 22).encode()) or clip is None:
            log.warning(
                "callback with an unknown clip or token clip=%s from %s",
                clip_id_text,
                request.remote,
            )
            return _not_found()
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return web.json_response({"error": "body over 1 MiB"}, status=413)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "body over 1 MiB"}, status=413)
        try:
            body = json.loads(raw)
        except ValueError:
            log.warning("callback body is not JSON camera=%s clip=%s", clip.camera, clip.id)
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(body, dict) or not ENVELOPE_KEYS & body.keys():
            # Not a result and not an error report: malformed, and nothing changes.
            log.warning(
                "callback body is not a result envelope camera=%s clip=%s", clip.camera, clip.id
            )
            return web.json_response({"error": "body is not a result envelope"}, status=400)
        envelope = parse_envelope(body)
        if envelope.task_id and clip.task_id and envelope.task_id != clip.task_id:
            log.warning(
                "callback task_id %s does not match the ledger's %s camera=%s clip=%s",
                envelope.task_id,
                clip.task_id,
                clip.camera,
                clip.id,
            )
            return web.json_response({"error": "task_id does not match this clip"}, status=409)
        if not envelope.ok:
            reason = f"analysis failed: code={envelope.code} msg={envelope.msg!r}"
            retry_at = None
            if clip.attempts < self._max_attempts:
                retry_at = time.time() + full_jitter(clip.attempts, rng=self._rng)
            log.warning(
                "%s camera=%s clip=%s resubmit=%s",
                reason,
                clip.camera,
                clip.id,
                retry_at is not None,
            )
            await self._db.run(self._db.ledger.analysis_failed, clip.id, reason, retry_at)
            return web.json_response({"ok": True})
        if envelope.text is None:
            log.warning("callback without a result text camera=%s clip=%s", clip.camera, clip.id)
            return web.json_response({"error": "no result text in the body"}, status=400)
        started = time.monotonic()
        created = await self._db.run(
            self._db.ledger.record_result,
            clip.id,
            task_id=envelope.task_id,
            text=envelope.text,
            tokens=envelope.tokens,
            raw=raw.decode("utf-8", "replace"),
        )
        if created:
            log.info(
                "result received camera=%s clip=%s (committed in %.0f ms)",
                clip.camera,
                clip.id,
                (time.monotonic() - started) * 1000,
            )
            if self._on_result is not None:
                self._on_result(clip.id)
        else:
            log.info("repeated callback ignored camera=%s clip=%s", clip.camera, clip.id)
        return web.json_response({"ok": True})

    async def _person_image(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD") or self._persons is None:
            return _not_found()
        given = request.match_info["token"].encode()
        if not hmac.compare_digest(given, self._persons.token.encode()):
            return _not_found()
        path = self._persons.images.get(request.match_info["name"])
        if path is None:
            return _not_found()
        return web.FileResponse(
            path, headers={"Content-Type": IMAGE_TYPES.get(path.suffix.lower(), "image/jpeg")}
        )

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        """An alert's picture behind a signed, expiring link (webhook `snapshot: url`)."""
        if request.method not in ("GET", "HEAD") or self._snapshots is None:
            return _not_found()
        file = f"{request.match_info['camera']}/{request.match_info['name']}"
        expires, signature = request.query.get("expires", ""), request.query.get("sig", "")
        verify = self._snapshots.verify
        path = await asyncio.to_thread(verify, file, expires, signature, time.time())
        if path is None:
            return _not_found()
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})


class CallbackServer:
    """`async with CallbackServer(app, host, port):` serves until the block ends."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        self._host = host
        self._port = port
        self.port = port

    async def __aenter__(self) -> CallbackServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = self._runner.addresses
        if sockets:
            self.port = sockets[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()
