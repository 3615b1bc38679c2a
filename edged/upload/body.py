"""A multipart payload that streams a clip from disk with a fixed memory footprint.

Over plain TCP the file goes to the socket by sendfile(2): the kernel copies it from the page
cache to the socket, no byte passes through Python and no worker thread is woken per chunk,
so sending costs about what curl's read/send loop costs. Over TLS (the service itself), or
when aiohttp's writer has to see the bytes (compression, chunked encoding, tracing or an
upload tracker), the file is read one chunk at a time on a worker thread and written to the
stream. Either way the event loop never waits on the disk (each slice is read once on a
worker thread before sendfile copies it from the page cache) and memory stays at one chunk.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from aiohttp import hdrs
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import StreamWriter
from aiohttp.payload import Payload

CHUNK_BYTES = 1 << 20
#: Bytes read ahead at once for sendfile, which then sends them a chunk at a time (the unit
#: of progress and of the stall timeout, as on the threaded path).
SENDFILE_SLICE_BYTES = 16 << 20
#: How much of a slice one read of the read-ahead takes.
READ_AHEAD_CHUNK = 1 << 20
#: What the HTML standard percent-encodes in a form-data parameter: LF, CR and `"`.
_FORM_ESCAPES = {10: "%0A", 13: "%0D", 34: "%22"}


def form_data_disposition(**params: str) -> str:
    """`form-data; name="…"; filename="…"` as browsers, curl and requests (urllib3 2) write
    it, after the WHATWG HTML standard: the value in UTF-8 as it is, only LF, CR and `"`
    percent-encoded. aiohttp's own percent-encodes every byte outside a token, so
    "Cam 1 – Façade.mp4" would reach a standard multipart parser as
    "Cam%201%20%E2%80%93%20Fa%C3%A7ade.mp4"."""
    quoted = [f'{key}="{value.translate(_FORM_ESCAPES)}"' for key, value in params.items()]
    return "; ".join(["form-data", *quoted])


class UploadStalled(TimeoutError):
    """The peer stopped reading the body for longer than the request timeout."""


class FilePayload(Payload):
    """Reads `size` bytes of `path` one chunk at a time on a worker thread.

    The size is declared up front, so the request carries a Content-Length (no
    chunked encoding) and memory stays at one chunk whatever the clip's size.
    """

    def __init__(
        self,
        handle: IO[bytes],
        path: Path,
        size: int,
        *,
        progress: Callable[[int, int], None] | None = None,
        stall_timeout_s: float = 600.0,
    ) -> None:
        super().__init__(path, content_type="video/mp4", filename=path.name)
        self._handle = handle
        self._path = path
        self._size = size
        self._length = size  # the declared size, typed as int for the loop below
        self._progress = progress
        self._stall_timeout_s = stall_timeout_s

    def set_content_disposition(
        self, disptype: str, quote_fields: bool = True, _charset: str = "utf-8", **params: str
    ) -> None:
        """A form-data part's name and file name as requests sends them (see
        form_data_disposition): a recording's name arrives intact, spaces, accents and all."""
        if disptype != "form-data" or _charset.lower() != "utf-8":
            super().set_content_disposition(disptype, quote_fields, _charset, **params)
            return
        self._headers[hdrs.CONTENT_DISPOSITION] = form_data_disposition(**params)

    async def write(self, writer: AbstractStreamWriter) -> None:
        # The caller owns the handle (opened before the request, closed after it), so an
        # abandoned write (the server answered early) leaks nothing. A retry starts over.
        if isinstance(writer, StreamWriter):
            transport = _sendfile_transport(writer)
            if transport is not None:
                await self._sendfile(writer, transport)
                return
        await self._read_and_write(writer)

    async def _read_and_write(self, writer: AbstractStreamWriter) -> None:
        await asyncio.to_thread(self._handle.seek, 0)
        sent = 0
        while sent < self._length:
            chunk = await asyncio.to_thread(
                self._handle.read, min(CHUNK_BYTES, self._length - sent)
            )
            if not chunk:
                raise OSError(f"{self._path} shrank while uploading ({sent} of {self._length})")
            try:
                async with asyncio.timeout(self._stall_timeout_s):
                    await writer.write(chunk)
            except TimeoutError as exc:
                raise UploadStalled(f"upload stalled for {self._stall_timeout_s:.0f}s") from exc
            sent += len(chunk)
            if self._progress is not None:
                self._progress(sent, self._length)

    async def _sendfile(self, writer: StreamWriter, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        fd = self._handle.fileno()
        await asyncio.to_thread(_read_ahead, fd, 0, SENDFILE_SLICE_BYTES)
        sent = 0
        while sent < self._length:
            count = min(SENDFILE_SLICE_BYTES, self._length - sent)
            ahead = asyncio.ensure_future(
                asyncio.to_thread(_read_ahead, fd, sent + count, SENDFILE_SLICE_BYTES)
            )
            try:
                # The slice (read ahead) goes in pieces of a chunk, each with its own stall
                # timeout: a slow but steady link is not a stalled one.
                end = sent + count
                while sent < end:
                    piece = min(CHUNK_BYTES, end - sent)
                    try:
                        async with asyncio.timeout(self._stall_timeout_s):
                            done = await loop.sendfile(transport, self._handle, sent, piece)
                    except TimeoutError as exc:
                        stalled = f"upload stalled for {self._stall_timeout_s:.0f}s"
                        raise UploadStalled(stalled) from exc
                    # What went past aiohttp's writer, in its accounts: the bytes on the
                    # wire and the declared length left for the closing boundary.
                    writer.output_size += done
                    if writer.length is not None:
                        writer.length -= done
                    sent += done
                    if done < piece:
                        shrank = f"{self._path} shrank while uploading ({sent} of {self._length})"
                        raise OSError(shrank)
                    if self._progress is not None:
                        self._progress(sent, self._length)
                await ahead
            finally:
                ahead.cancel()

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a video payload has no text form")


def _sendfile_transport(writer: StreamWriter) -> asyncio.Transport | None:
    """The plain TCP transport under `writer` when the file may bypass it by sendfile(2):
    aiohttp's own writer, with the request's headers out and nothing of its own to do with
    the body bytes (no compression, no chunked encoding, no tracing, no upload tracker);
    else None. TLS has to pass the bytes through Python to encrypt them, so it keeps the
    threaded reads."""
    plain = (
        type(writer) is StreamWriter
        and not writer.chunked
        and getattr(writer, "_compress", True) is None
        and getattr(writer, "_on_chunk_sent", True) is None
        and getattr(writer, "on_body_write", True) is None
        and getattr(writer, "_headers_written", False)
    )
    transport = writer.transport
    if not plain or transport is None or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    if transport.get_extra_info("socket") is None:
        return None
    return transport


def _read_ahead(fd: int, offset: int, length: int) -> None:
    """Blocking: read a slice of the file once, into one reused buffer, so that its pages are
    in the page cache when sendfile copies them in the event loop. posix_fadvise(WILLNEED)
    would only start the reads, and sendfile would then wait for the disk on the loop (an SD
    card or a spinning disk: a blocked loop for a whole slice); reading costs one memory copy
    of the slice, and the loop never waits on the disk."""
    buffer = bytearray(READ_AHEAD_CHUNK)
    end = offset + length
    while offset < end:
        got = os.preadv(fd, [memoryview(buffer)[: min(READ_AHEAD_CHUNK, end - offset)]], offset)
        if got <= 0:
            return  # the end of the file
        offset += got
