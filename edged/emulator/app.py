"""The emulator's aiohttp application: the four API endpoints and the control endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from edged.emulator.callbacks import CallbackSender, plan_delivery
from edged.emulator.options import (
    CallbackRecord,
    EmulatorOptions,
    OptionError,
    ReceivedRequest,
)
from edged.emulator.protocol import (
    BUSINESS_MESSAGES,
    Rejection,
    ack_body,
    bad_request,
    callback_body,
    caption_callback_body,
    caption_failure_body,
    error_body,
    http_error,
    result_body,
    script_text,
    token_usage,
    validate_req,
)
from edged.emulator.upload import answer_early, probe_video, read_json_body, receive_multipart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    path: str
    multipart: bool
    is_async: bool


ENDPOINTS = (
    Endpoint("/v1/understand/upload", multipart=False, is_async=True),
    Endpoint("/v1/understand/uploadFile", multipart=True, is_async=True),
    Endpoint("/v1/understand/uploadSync", multipart=False, is_async=False),
    Endpoint("/v1/understand/uploadFileSync", multipart=True, is_async=False),
)


@dataclass
class _Draft:
    """What is known about a request so far; frozen into a ReceivedRequest at the end."""

    req: dict[str, Any] = dataclasses.field(default_factory=dict)
    file_name: str | None = None
    file_size: int | None = None
    file_sha256: str | None = None
    task_id: str | None = None
    callback_fault: str | None = None


class Emulator:
    """A local stand-in for the memories.ai security API; see API.md for what it speaks."""

    def __init__(self, options: EmulatorOptions | None = None, *, seed: int | None = None) -> None:
        self.options = options if options is not None else EmulatorOptions()
        self.received: list[ReceivedRequest] = []
        self.callbacks_sent: list[CallbackRecord] = []
        self.host = ""
        self.port = 0
        self._rng = random.Random(seed)
        self._changed = asyncio.Event()
        self._callbacks = CallbackSender(self.callbacks_sent, self._notify)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        for endpoint in ENDPOINTS:
            app.router.add_post(endpoint.path, self._api_handler(endpoint))
        app.router.add_get("/_emulator/requests", self._get_requests)
        app.router.add_get("/_emulator/callbacks", self._get_callbacks)
        app.router.add_get("/_emulator/options", self._get_options)
        app.router.add_post("/_emulator/options", self._post_options)
        app.router.add_post("/_emulator/reset", self._post_reset)
        app.cleanup_ctx.append(self._callbacks.lifecycle)
        return app

    async def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[ReceivedRequest]:
        """Wait until at least `count` API requests were answered (or dropped)."""
        await self._wait(lambda: len(self.received) >= count, timeout_s)
        return list(self.received)

    async def wait_for_callbacks(self, count: int, timeout_s: float = 5.0) -> list[CallbackRecord]:
        """Wait until at least `count` callback POSTs were attempted."""
        await self._wait(lambda: len(self.callbacks_sent) >= count, timeout_s)
        return list(self.callbacks_sent)

    async def _wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not done():
                await self._changed.wait()

    def _notify(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    # ---- the API -------------------------------------------------------------------------

    def _api_handler(
        self, endpoint: Endpoint
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, endpoint)

        return handle

    async def _handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        options = self.options
        started_at = time.time()
        if options.latency_s:
            await asyncio.sleep(options.latency_s)
        authorization = request.headers.get("Authorization")
        draft = _Draft()
        headers: dict[str, str] = {}
        error: str | None = None
        try:
            self._check_auth(authorization)
            self._inject_failure()
            if options.drop_connection_rate and self._rng.random() < options.drop_connection_rate:
                await self._drop(request)
                self._record(endpoint, authorization, draft, 0, "connection dropped", started_at)
                return web.Response(status=204)  # never reaches the client
            body = await self._answer(request, endpoint, draft)
            status = 200
        except Rejection as exc:
            status, error = exc.status, exc.msg
            body = error_body(options.envelope, exc.code, exc.msg)
            if status in options.retry_after_statuses and options.retry_after_s is not None:
                headers["Retry-After"] = f"{options.retry_after_s:g}"
        self._record(endpoint, authorization, draft, status, error, started_at)
        response = web.json_response(body, status=status, headers=headers)
        if not request.content.is_eof():
            await answer_early(request, response)
        return response

    def _check_auth(self, authorization: str | None) -> None:
        if not authorization or not authorization.strip():
            raise Rejection(401, "401", "unauthorized")
        if authorization[:7].lower() == "bearer ":
            raise Rejection(401, "401", "unauthorized: send the raw API key, without 'Bearer '")
        expected = self.options.api_key
        if expected is not None and authorization != expected:
            raise Rejection(401, "401", "unauthorized")

    def _inject_failure(self) -> None:
        options = self.options
        refusal = options.refusal()
        if refusal is not None:
            message = BUSINESS_MESSAGES.get(refusal, "refused")
            raise Rejection(options.refuse_status, refusal, message)
        outage = options.outage_status()
        if outage is not None:
            raise http_error(outage)
        if options.fail_next:
            raise http_error(options.fail_next.pop(0))
        if options.error_rate and self._rng.random() < options.error_rate:
            raise http_error(self._rng.choice(options.error_statuses or (503,)))

    async def _drop(self, request: web.Request) -> None:
        # Take a little of the body first, so that the cut happens mid-upload.
        await request.content.read(64 * 1024)
        if request.transport is not None:
            request.transport.abort()

    async def _answer(
        self, request: web.Request, endpoint: Endpoint, draft: _Draft
    ) -> dict[str, Any]:
        options = self.options

        def check(raw: object) -> dict[str, Any]:
            if isinstance(raw, dict):
                draft.req = raw
            url_endpoint = not endpoint.multipart
            return validate_req(raw, url_endpoint=url_endpoint, is_async=endpoint.is_async)

        title: str | None = None
        duration_s: float | None = None
        if endpoint.multipart:
            async with receive_multipart(
                request, max_file_bytes=options.max_file_bytes, check_req=check
            ) as upload:
                draft.file_name = upload.file_name
                draft.file_size = upload.file_size
                draft.file_sha256 = upload.sha256
                probe = await asyncio.to_thread(probe_video, upload.path)
            req = upload.req
            title, duration_s = probe.title, probe.duration_s
            if duration_s is not None and duration_s > options.max_duration_s:
                raise bad_request(
                    f"duration: {duration_s:.1f} s is over the {options.max_duration_s:g} s limit",
                    code="1003",
                )
        else:
            req = check(await read_json_body(request))
            draft.file_name = URL(req["video_url"]).name or None
        if options.error_envelope_rate and self._rng.random() < options.error_envelope_rate:
            raise Rejection(200, "5001", "internal error")
        text = options.texts.get(draft.file_name or "", options.text)
        if text is None:
            text = script_text(
                req.get("persons", []),
                file_name=draft.file_name,
                title=title,
                duration_s=duration_s,
            )
        token = token_usage(req, text)
        if not endpoint.is_async:
            return result_body(options.envelope, text, token)
        draft.task_id = f"task-{uuid.uuid4().hex}"
        if options.callback_faults:
            draft.callback_fault = options.callback_faults.pop(0)
        shape = options.callback_shape
        if shape == "mixed":
            shape = self._rng.choice(("envelope", "caption"))
        if draft.callback_fault == "failed":  # the service reports that the analysis failed
            if shape == "caption":
                result = caption_failure_body(draft.task_id)
            else:
                result = error_body(options.envelope, "5001", "analysis failed")
                result["task_id"] = draft.task_id
        elif shape == "caption":
            result = caption_callback_body(draft.task_id, text, token)
        else:
            result = callback_body(options.envelope, draft.task_id, text, token)
        fault = draft.callback_fault
        delivery = plan_delivery(options, req["callback"], draft.task_id, result, fault)
        if delivery is not None:
            self._callbacks.schedule(delivery)
        return ack_body(options.envelope, draft.task_id)

    def _record(
        self,
        endpoint: Endpoint,
        authorization: str | None,
        draft: _Draft,
        status: int,
        error: str | None,
        started_at: float,
    ) -> None:
        self.received.append(
            ReceivedRequest(
                endpoint=endpoint.path,
                authorization=authorization,
                req=draft.req,
                file_name=draft.file_name,
                file_size=draft.file_size,
                file_sha256=draft.file_sha256,
                status=status,
                task_id=draft.task_id,
                received_at=time.time(),
                error=error,
                started_at=started_at,
                callback_fault=draft.callback_fault,
            )
        )
        self._notify()
        # The Authorization value is recorded for tests but never logged.
        log.info(
            "%s -> %d task=%s file=%s size=%s error=%s",
            endpoint.path,
            status,
            draft.task_id or "-",
            draft.file_name or "-",
            draft.file_size if draft.file_size is not None else "-",
            error or "-",
        )

    # ---- control endpoints, for tests that run the emulator in another process -----------

    async def _get_requests(self, request: web.Request) -> web.Response:
        # Whoever can reach this port must not learn the key: only whether one was sent.
        redacted = [
            {**dataclasses.asdict(item), "authorization": "***" if item.authorization else None}
            for item in self.received
        ]
        return web.json_response(redacted)

    async def _get_callbacks(self, request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(item) for item in self.callbacks_sent])

    async def _get_options(self, request: web.Request) -> web.Response:
        return web.json_response(_shown(self.options))

    async def _post_options(self, request: web.Request) -> web.Response:
        try:
            changes = await read_json_body(request)
            if not isinstance(changes, dict):
                raise bad_request("expected a JSON object of option fields")
            self.options.update(changes)
        except Rejection as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=400)
        except OptionError as exc:
            return web.json_response({"code": "1001", "msg": str(exc)}, status=400)
        log.info("options changed: %s", ", ".join(sorted(changes)))
        return web.json_response(_shown(self.options))

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.received.clear()
        self.callbacks_sent.clear()
        return web.json_response({"code": 0, "msg": "success"})


def _shown(options: EmulatorOptions) -> dict[str, Any]:
    """The options as the control endpoints show them: whoever reaches the port must not
    learn the key the emulator expects."""
    shown = options.to_json()
    if shown.get("api_key") is not None:
        shown["api_key"] = "***"
    return shown
