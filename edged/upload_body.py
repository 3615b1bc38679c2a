"""A multipart payload that streams a clip from disk with a fixed memory footprint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import IO

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

CHUNK_BYTES = 1 << 20


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
