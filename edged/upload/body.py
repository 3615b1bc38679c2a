"""A multipart payload that streams a clip from disk with a fixed memory footprint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import IO

from aiohttp import hdrs
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

CHUNK_BYTES = 1 << 20
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

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a video payload has no text form")
