"""Reading request bodies the way the service must: bounded JSON, and uploads streamed
to disk, hashed, then probed.

The video part is never held in memory: chunks go to a temporary file from a worker
thread, so a multi-gigabyte upload costs the emulator about one megabyte.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import av
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from edged.emulator.multipart import MultipartError, MultipartStream, PartHeaders
from edged.emulator.protocol import Rejection, bad_request

READ_SIZE = 64 * 1024
WRITE_SIZE = 1024 * 1024  # bytes gathered before one write in a thread
MAX_REQ_BYTES = 1024 * 1024  # for JSON bodies and the `req` part
DISCARD_TIMEOUT_S = 10.0  # as long as aiohttp would linger over an unread body


@dataclass(frozen=True)
class Upload:
    """A received `files` part, on disk until the context that made it exits."""

    req: dict[str, Any]
    file_name: str
    file_size: int
    sha256: str
    path: Path


@dataclass(frozen=True)
class Probe:
    duration_s: float | None
    title: str | None


def _write(handle: IO[bytes], update_digest: Callable[[bytes], None], data: bytes) -> None:
    # Runs in a worker thread; hashlib releases the GIL on large buffers.
    update_digest(data)
    handle.write(data)


async def _read_req(stream: MultipartStream, part: PartHeaders) -> object:
    if part.content_type != "application/json":
        raise bad_request("req: expected a part of type application/json")
    data = bytearray()
    while chunk := await stream.read_chunk():
        data += chunk
        if len(data) > MAX_REQ_BYTES:
            raise bad_request("req: larger than 1 MiB")
    try:
        return json.loads(bytes(data))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"req: not valid JSON ({exc.__class__.__name__})") from exc


async def _stream_file(
    stream: MultipartStream, handle: IO[bytes], max_bytes: int
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    pending = bytearray()
    while chunk := await stream.read_chunk():
        size += len(chunk)
        if size > max_bytes:
            raise Rejection(413, "413", f"file too large: over the {max_bytes} byte limit")
        pending += chunk
        if len(pending) >= WRITE_SIZE:
            await asyncio.to_thread(_write, handle, digest.update, bytes(pending))
            pending.clear()
    if pending:
        await asyncio.to_thread(_write, handle, digest.update, bytes(pending))
    return size, digest.hexdigest()


def _open_temp() -> tuple[IO[bytes], Path]:
    fd, name = tempfile.mkstemp(prefix="edged-emulator-", suffix=".upload")
    return os.fdopen(fd, "wb"), Path(name)


def _discard(handle: IO[bytes], path: Path) -> None:
    handle.close()
    path.unlink(missing_ok=True)


@asynccontextmanager
async def receive_multipart(
    request: web.Request,
    *,
    max_file_bytes: int,
    check_req: Callable[[object], dict[str, Any]],
) -> AsyncIterator[Upload]:
    """Read parts `req` and `files`; `check_req` runs as soon as `req` arrives.

    Raises Rejection for anything malformed; the temporary file is gone on exit.
    """
    handle, path = await asyncio.to_thread(_open_temp)
    try:
        req: dict[str, Any] | None = None
        stored: tuple[str, int, str] | None = None
        try:
            stream = MultipartStream.from_request(request)
            while (part := await stream.next_part()) is not None:
                if part.name == "req" and req is None:
                    req = check_req(await _read_req(stream, part))
                elif part.name == "files" and stored is None:
                    if not part.filename:
                        raise bad_request("files: the part needs a filename")
                    size, sha256 = await _stream_file(stream, handle, max_file_bytes)
                    stored = (_base_name(part.filename), size, sha256)
                else:
                    raise bad_request(f"unexpected part {part.name!r}")
        except MultipartError as exc:
            raise bad_request(str(exc)) from exc
        except (HttpProcessingError, ConnectionError) as exc:
            # A body cut off by the client, or broken at the HTTP level.
            raise bad_request(f"malformed request body: {exc.__class__.__name__}") from exc
        if req is None:
            raise bad_request("req: missing part")
        if stored is None:
            raise bad_request("files: missing part")
        await asyncio.to_thread(handle.close)
        name, size, sha256 = stored
        yield Upload(req=req, file_name=name, file_size=size, sha256=sha256, path=path)
    finally:
        await asyncio.to_thread(_discard, handle, path)


def _base_name(filename: str) -> str:
    # Clients may send a full path; only the last component names the clip.
    return PurePosixPath(filename.replace("\\", "/")).name or "upload"


def probe_video(path: Path) -> Probe:
    """Open the file with PyAV; blocking, so run it in a thread."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise bad_request("invalid video: no video stream", code="1002")
            title = container.metadata.get("title")
            duration_s: float | None = None
            if container.duration is not None:
                duration_s = container.duration / av.time_base
            else:
                stream = container.streams.video[0]
                if stream.duration is not None and stream.time_base is not None:
                    duration_s = float(stream.duration * stream.time_base)
    except (av.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise bad_request("invalid video: the file cannot be demuxed", code="1002") from exc
    return Probe(duration_s=duration_s, title=title)


async def answer_early(request: web.Request, response: web.Response) -> None:
    """Answer before the whole body arrived (401, 413, an injected 503...).

    The answer goes out at once, then the rest of the body is read and dropped: closing
    while the client still sends would reset the connection, which can destroy the
    answer in flight, and aiohttp's own lingering can hold the connection until shutdown.
    """
    response.force_close()
    transport = request.transport
    if transport is None or transport.is_closing():
        return  # the client has gone; there is no one to answer
    with contextlib.suppress(TimeoutError, ConnectionError, HttpProcessingError):
        await response.prepare(request)
        await response.write_eof()
        async with asyncio.timeout(DISCARD_TIMEOUT_S):
            while await request.content.read(READ_SIZE):
                pass


async def read_json_body(request: web.Request) -> object:
    if request.content_type != "application/json":
        raise bad_request("expected an application/json body")
    data = bytearray()
    try:
        while chunk := await request.content.read(READ_SIZE):
            data += chunk
            if len(data) > MAX_REQ_BYTES:
                raise Rejection(413, "413", "JSON body larger than 1 MiB")
    except (HttpProcessingError, ConnectionError) as exc:
        raise bad_request(f"body: cut off or malformed ({exc.__class__.__name__})") from exc
    try:
        return json.loads(bytes(data))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"body: not valid JSON ({exc.__class__.__name__})") from exc
