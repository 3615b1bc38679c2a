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
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from edged.backoff import full_jitter
from edged.clip import AWAITING_RESULT_STATES, HAS_RESULT_STATES, Clip, ClipState
from edged.ledger.thread import AsyncLedger
from edged.media.snapshot_store import SnapshotStore
from edged.printable import printable
from edged.results.listener_guard import ConnectionGuard, ListenerLimits
from edged.results.rejections import Rejections
from edged.upload.api_codes import PAUSE_ADVICE, PauseReason, meaning_of_code
from edged.upload.envelope import Envelope, parse_envelope
from edged.upload.persons import PersonDirectory

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
#: A callback body must carry at least one of these to be read as a result or an error.
ENVELOPE_KEYS = frozenset({"code", "status", "success", "failed", "data", "text"})
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
#: The forms edged issues (edged/ledger/clips.py new_callback_token): anything else is not ours.
CLIP_ID = re.compile(r"[0-9]{1,18}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")
SERVER_NAME = "edged"

ResultHook = Callable[[int], None]
PauseHook = Callable[[PauseReason, str], Awaitable[None]]


def _not_found() -> web.Response:
    return web.json_response({"error": "not found"}, status=404)


def _bad(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _matching_attempt(given: str, issued: list[tuple[str, str | None]], decoy: str) -> int | None:
    """Index of the issued token equal to `given`, compared in constant time with each (and
    with a decoy when none was issued, so an unknown clip costs the same time)."""
    found = None
    for index, (token, _task_id) in enumerate(issued or [(decoy, None)]):
        if hmac.compare_digest(given.encode(), token.encode()) and issued:
            found = index
    return found


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
        rejections: Rejections | None = None,
        limits: ListenerLimits | None = None,
        callbacks: bool = True,
    ) -> None:
        self._db = db
        self._persons = persons
        self._max_attempts = max_attempts
        self._on_result = on_result
        self._rng = rng or random.Random()
        self._snapshots = snapshots
        self.rejections = rejections or Rejections()
        self.limits = limits or ListenerLimits()
        self._callbacks = callbacks
        #: Pauses every upload when a callback reports the account's problem (the uploader's).
        self.on_pause: PauseHook | None = None
        # Not of the token form, so no request can ever match it.
        self._decoy = "!" + secrets.token_urlsafe(16)[1:]

    def app(self, guard: ConnectionGuard | None = None) -> web.Application:
        middlewares = [guard.middleware] if guard is not None else []
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
        app.on_response_prepare.append(_plain_server_header)
        if self._callbacks:
            app.router.add_route("*", "/callbacks/{clip_id}/{token}", self._callback)
            app.router.add_route("*", "/snapshots/{camera}/{name}", self._snapshot)
        app.router.add_route("*", "/persons/{token}/{name}", self._person_image)
        app.router.add_route("*", "/{tail:.*}", self._anything_else)
        return app

    def _reject(
        self, request: web.Request, reason: str, response: web.Response | None = None
    ) -> web.Response:
        self.rejections.reject(request.remote, reason, request.path[:200])
        return response if response is not None else _not_found()

    async def _anything_else(self, request: web.Request) -> web.Response:
        return self._reject(request, "unknown_path")

    async def _callback(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return self._reject(request, "method")
        clip_id_text, given = request.match_info["clip_id"], request.match_info["token"]
        if not CLIP_ID.fullmatch(clip_id_text) or not TOKEN.fullmatch(given):
            return self._reject(request, "malformed_url")
        clip_id = int(clip_id_text)
        clip = await self._db.call(self._db.ledger.clips.get, clip_id)
        issued = await self._db.call(self._db.ledger.uploads.issued_tokens, clip_id)
        attempt = _matching_attempt(given, issued, self._decoy)
        if clip is None or attempt is None:
            return self._reject(request, "unknown_clip_or_token")
        if clip.state in HAS_RESULT_STATES:
            # The service repeating itself (it retries until it sees a 2xx): nothing changes.
            log.info("repeated callback ignored camera=%s clip=%s", clip.camera, clip.id)
            return web.json_response({"ok": True})
        if clip.state not in AWAITING_RESULT_STATES:
            return self._reject(request, "clip_not_waiting")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._reject(request, "body_too_large", _bad("body over 1 MiB", 413))
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(request, "body_too_large", _bad("body over 1 MiB", 413))
        except TimeoutError:
            return self._reject(request, "body_timeout", _bad("body not received in time", 408))
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            log.warning("callback body is not JSON camera=%s clip=%s", clip.camera, clip.id)
            return self._reject(request, "not_json", _bad("body is not JSON"))
        if not isinstance(body, dict) or not ENVELOPE_KEYS & body.keys():
            # Not a result and not an error report: malformed, and nothing changes.
            log.warning(
                "callback body is not a result envelope camera=%s clip=%s", clip.camera, clip.id
            )
            return self._reject(request, "not_envelope", _bad("body is not a result envelope"))
        envelope = parse_envelope(body)
        expected_task = issued[attempt][1]
        if envelope.task_id and expected_task and envelope.task_id != expected_task:
            log.warning(
                "callback task_id %s does not match the ledger's %s camera=%s clip=%s",
                printable(envelope.task_id),
                printable(expected_task),
                clip.camera,
                clip.id,
            )
            return self._reject(
                request, "task_id_mismatch", _bad("task_id does not match this clip", 409)
            )
        if not envelope.ok:
            return await self._analysis_failed(clip, envelope, latest=attempt == 0)
        if envelope.text is None:
            log.warning("callback without a result text camera=%s clip=%s", clip.camera, clip.id)
            return self._reject(request, "no_text", _bad("no result text in the body"))
        started = time.monotonic()
        created = await self._db.call(
            self._db.ledger.results.record_result,
            clip.id,
            task_id=envelope.task_id or expected_task,
            text=envelope.text,
            tokens=envelope.tokens,
            raw=raw.decode("utf-8", "replace"),
        )
        if created:
            log.info(
                "result received camera=%s clip=%s attempt=%d (committed in %.0f ms)",
                clip.camera,
                clip.id,
                len(issued) - attempt,
                (time.monotonic() - started) * 1000,
            )
            if self._on_result is not None:
                self._on_result(clip.id)
        else:
            log.info("repeated callback ignored camera=%s clip=%s", clip.camera, clip.id)
        return web.json_response({"ok": True})

    async def _analysis_failed(
        self, clip: Clip, envelope: Envelope, *, latest: bool
    ) -> web.Response:
        reason = f"analysis failed: code={envelope.code} msg={envelope.msg!r}"
        if not latest:
            # An earlier attempt failed; the latest one may still succeed: nothing changes.
            log.warning("%s (an earlier attempt) camera=%s clip=%s", reason, clip.camera, clip.id)
            return web.json_response({"ok": True})
        meaning = meaning_of_code(envelope.code)
        if meaning.pause is not None:
            # Refused for the account's sake (no credit, a refused key): not the clip's fault.
            reason = f"{reason}: {meaning.what}; {PAUSE_ADVICE[meaning.pause]}"
            await self._db.call(
                self._db.ledger.uploads.release,
                clip.id,
                reason,
                from_states=(ClipState.UPLOADING, ClipState.SUBMITTED),
            )
            if self.on_pause is not None:
                await self.on_pause(meaning.pause, reason)
            return web.json_response({"ok": True})
        retry_at = None
        if clip.attempts < self._max_attempts:
            retry_at = time.time() + full_jitter(clip.attempts, rng=self._rng)
        log.warning(
            "%s camera=%s clip=%s resubmit=%s",
            printable(reason),
            clip.camera,
            clip.id,
            retry_at is not None,
        )
        await self._db.call(self._db.ledger.uploads.analysis_failed, clip.id, reason, retry_at)
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


async def _plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No Python or aiohttp version for whoever scans the box."""
    response.headers["Server"] = SERVER_NAME
