"""Client of the memories.ai security API: the four endpoints, streamed uploads, error classes.

Whether a failure is transient (retry later), permanent (this clip will never be
accepted), a pause of every upload (refused key, no credit, no permission) or a
duplicate is decided here, once, from the table in edged/upload/api_codes.py, and carried by
`ApiError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

import aiohttp

from edged.errors import EdgedError
from edged.media.regular_files import NotRegularFile, open_regular
from edged.upload.api_codes import (
    PAUSE_ADVICE,
    UNKNOWN,
    Failure,
    Meaning,
    PauseReason,
    meaning_of_code,
    meaning_of_status,
)
from edged.upload.body import FilePayload
from edged.upload.envelope import Envelope, parse_envelope

log = logging.getLogger(__name__)

UPLOAD_FILE = "/v1/understand/uploadFile"
UPLOAD_FILE_SYNC = "/v1/understand/uploadFileSync"
UPLOAD_URL = "/v1/understand/upload"
UPLOAD_URL_SYNC = "/v1/understand/uploadSync"

ProgressFn = Callable[[int, int], None]


#: Vets an open file descriptor before upload: None if it may be sent, else why not.
FileCheck = Callable[[int], str | None]


class FileChanged(EdgedError):
    """The file at the clip's path is not the one that was queued."""


class ApiError(EdgedError):
    def __init__(
        self,
        message: str,
        failure: Failure,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        meaning: Meaning | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        self.meaning = meaning or Meaning(failure, failure.value)

    @property
    def transient(self) -> bool:
        return self.failure is Failure.TRANSIENT

    @property
    def pause(self) -> PauseReason | None:
        return self.meaning.pause


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """The JSON of the `req` part (or body): prompts, flags, persons and the callback."""

    user_prompt: str
    system_prompt: str
    callback: str | None = None
    thinking: bool = False
    qa: bool = False
    reasoning_effort: str | None = None
    persons: tuple[Person, ...] = ()

    def to_json(self, video_url: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "user_prompt": self.user_prompt,
            "system_prompt": self.system_prompt,
            "thinking": self.thinking,
            "qa": self.qa,
        }
        if video_url is not None:
            body["video_url"] = video_url
        if self.callback is not None:
            body["callback"] = self.callback
        # The service applies reasoning_effort only with thinking, and its default (-1, the
        # model decides) needs no field: it is sent only when the operator set one
        # (`edged check-config` says when it has no effect).
        if self.reasoning_effort is not None:
            body["reasoning_effort"] = self.reasoning_effort
        if self.persons:
            body["persons"] = [{"name": p.name, "url": p.url} for p in self.persons]
        return body


class ApiClient:
    """`async with ApiClient(base_url, api_key) as api:` owns one aiohttp session."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        request_timeout_s: float = 600.0,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._request_timeout_s = request_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout_s, sock_read=self._request_timeout_s
        )
        self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def set_api_key(self, api_key: str) -> None:
        """A reloaded config's key, for the requests from now on."""
        self._api_key = api_key

    async def upload_file(
        self,
        path: Path,
        request: AnalysisRequest,
        *,
        sync: bool = False,
        progress: ProgressFn | None = None,
        check: FileCheck | None = None,
    ) -> Envelope:
        """POST the clip as multipart (`req` JSON part + `files` part), streamed from disk.
        `check` vets the opened file (in a thread) before any byte is sent: what is sent is
        what was opened, whatever happens to the path meanwhile."""
        # Only a regular file, never through a link, never waiting on a FIFO swapped in.
        handle = await asyncio.to_thread(_open_clip, path)
        try:
            if check is not None:
                problem = await asyncio.to_thread(check, handle.fileno())
                if problem is not None:
                    raise FileChanged(problem)
            size = (await asyncio.to_thread(os.fstat, handle.fileno())).st_size
            with aiohttp.MultipartWriter("form-data") as body:
                req_part = body.append_json(request.to_json())
                req_part.set_content_disposition("form-data", name="req")
                payload = FilePayload(
                    handle, path, size, progress=progress, stall_timeout_s=self._request_timeout_s
                )
                file_part = body.append_payload(payload)
                file_part.set_content_disposition("form-data", name="files", filename=path.name)
                return await self._post(UPLOAD_FILE_SYNC if sync else UPLOAD_FILE, data=body)
        finally:
            handle.close()

    async def upload_url(
        self, video_url: str, request: AnalysisRequest, *, sync: bool = False
    ) -> Envelope:
        endpoint = UPLOAD_URL_SYNC if sync else UPLOAD_URL
        return await self._post(endpoint, json_body=request.to_json(video_url))

    async def _post(
        self, endpoint: str, *, data: Any = None, json_body: dict[str, Any] | None = None
    ) -> Envelope:
        assert self._session is not None, "use ApiClient as an async context manager"
        headers = {"Authorization": self._api_key}
        try:
            async with self._session.post(
                self._base_url + endpoint, data=data, json=json_body, headers=headers
            ) as response:
                raw = await response.read()
                return _check_answer(endpoint, response.status, response.headers, raw)
        except ApiError:
            raise
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            raise ApiError(f"{endpoint}: {reason}", Failure.TRANSIENT) from exc


def _open_clip(path: Path) -> BinaryIO:
    """Blocking. Raises FileChanged when the path is no longer a regular file."""
    try:
        fd, _ = open_regular(path)
    except NotRegularFile as exc:
        raise FileChanged(f"{path.name}: {exc}") from None
    return os.fdopen(fd, "rb")


def _check_answer(endpoint: str, status: int, headers: Any, raw: bytes) -> Envelope:
    retry_after = parse_retry_after(headers.get("Retry-After"))
    try:
        body: Any = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        body = None
    envelope = parse_envelope(body) if body is not None else None
    detail = _detail(envelope, raw)
    meaning = meaning_of_status(status)
    if meaning is not None:
        # The body's own code, when it has one, says more than the status (a 400 with
        # code 0402 is out of credit).
        if envelope is not None and envelope.code is not None and not envelope.ok:
            by_code = meaning_of_code(envelope.code)
            if by_code is not UNKNOWN:
                meaning = by_code
        raise _error(endpoint, f"HTTP {status} ({detail})", meaning, status, envelope, retry_after)
    if envelope is None:
        raise ApiError(
            f"{endpoint}: answer is not JSON ({detail})", Failure.TRANSIENT, status=status
        )
    if not envelope.ok:
        meaning = meaning_of_code(envelope.code)
        what = f"API error code={envelope.code} msg={envelope.msg!r}"
        raise _error(endpoint, what, meaning, status, envelope, retry_after)
    return envelope


def _error(
    endpoint: str,
    what: str,
    meaning: Meaning,
    status: int,
    envelope: Envelope | None,
    retry_after: float | None,
) -> ApiError:
    message = f"{endpoint}: {what}: {meaning.what}"
    if meaning.pause is not None:
        message += f"; {PAUSE_ADVICE[meaning.pause]}"
    return ApiError(
        message,
        meaning.failure,
        status=status,
        code=envelope.code if envelope is not None else None,
        retry_after_s=retry_after if meaning.failure is Failure.TRANSIENT else None,
        meaning=meaning,
    )


def _detail(envelope: Envelope | None, raw: bytes) -> str:
    if envelope is not None and (envelope.code or envelope.msg):
        return f"code={envelope.code} msg={envelope.msg!r}"
    text = raw[:200].decode("utf-8", "replace").strip()
    return repr(text) if text else "empty body"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        # HTTP says whole seconds, but services and gateways send "2.5" too: honour it.
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
