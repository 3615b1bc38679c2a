"""What the emulator answers one API request, as the service would.

The endpoints and what each takes; the key it checks; the faults its options inject (a
refusal, an outage, a dropped connection); and the body: the result (sync), or the
acknowledgement and the callback that will follow (async). Each takes the options in force and
the emulator's random source, so an answer depends on nothing else; `app` records it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from edged.emulator.callbacks import Delivery, plan_delivery
from edged.emulator.options import EmulatorOptions
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
from edged.emulator.upload import probe_video, read_json_body, receive_multipart


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
class Draft:
    """What is known about a request so far; frozen into a ReceivedRequest at the end."""

    req: dict[str, Any] = dataclasses.field(default_factory=dict)
    file_name: str | None = None
    file_size: int | None = None
    file_sha256: str | None = None
    task_id: str | None = None
    callback_fault: str | None = None


def check_auth(options: EmulatorOptions, authorization: str | None) -> None:
    if not authorization or not authorization.strip():
        raise Rejection(401, "401", "unauthorized")
    if authorization[:7].lower() == "bearer ":
        raise Rejection(401, "401", "unauthorized: send the raw API key, without 'Bearer '")
    expected = options.api_key
    if expected is not None and authorization != expected:
        raise Rejection(401, "401", "unauthorized")


def inject_failure(options: EmulatorOptions, rng: random.Random) -> None:
    refusal = options.refusal()
    if refusal is not None:
        message = BUSINESS_MESSAGES.get(refusal, "refused")
        raise Rejection(options.refuse_status, refusal, message)
    outage = options.outage_status()
    if outage is not None:
        raise http_error(outage)
    if options.fail_next:
        raise http_error(options.fail_next.pop(0))
    if options.error_rate and rng.random() < options.error_rate:
        raise http_error(rng.choice(options.error_statuses or (503,)))


async def drop(request: web.Request) -> None:
    # Take a little of the body first, so that the cut happens mid-upload.
    await request.content.read(64 * 1024)
    if request.transport is not None:
        request.transport.abort()


async def answer(
    request: web.Request,
    endpoint: Endpoint,
    draft: Draft,
    options: EmulatorOptions,
    rng: random.Random,
    schedule: Callable[[Delivery], None],
) -> dict[str, Any]:
    """The body of a 200 answer; raises Rejection for an error answer."""

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
    if options.error_envelope_rate and rng.random() < options.error_envelope_rate:
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
        shape = rng.choice(("envelope", "caption"))
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
        schedule(delivery)
    return ack_body(options.envelope, draft.task_id)
