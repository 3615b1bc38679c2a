"""A streaming multipart/form-data reader whose memory does not grow with the body.

aiohttp's own reader raises the request stream's buffer limit to whatever chunk size
it is asked for, and with small chunks it may push bytes back into the stream through
a deprecated call; this reader asks the stream for fixed, small reads and keeps at most
one read plus a delimiter's length of lookahead.
"""

from __future__ import annotations

import email.message
from dataclasses import dataclass

from aiohttp import StreamReader, web

from edged.errors import EdgedError

READ_SIZE = 64 * 1024  # aiohttp then buffers at most about twice this per connection
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(EdgedError, ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass(frozen=True)
class PartHeaders:
    name: str | None
    filename: str | None
    content_type: str | None  # the media type alone, lower case, without parameters


def _boundary(content_type: str) -> str:
    header = email.message.Message()
    header["Content-Type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        raise MultipartError("expected a multipart/form-data body")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 70:
        raise MultipartError("multipart/form-data without a valid boundary")
    return boundary


def _parse_headers(raw: bytes) -> PartHeaders:
    lines = raw.split(b"\r\n")
    if lines[0].strip():  # only transport padding may follow a delimiter on its line
        raise MultipartError("garbage after a boundary")
    header = email.message.Message()
    for line in lines[1:]:
        key, sep, value = line.partition(b":")
        if not sep or not key.strip():
            raise MultipartError("malformed part header")
        try:
            header[key.strip().decode("ascii")] = value.strip().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MultipartError("part header is neither ASCII nor UTF-8") from exc
    if header.get_content_disposition() != "form-data":
        raise MultipartError("part without Content-Disposition: form-data")
    name = header.get_param("name", header="content-disposition")
    content_type = header.get_content_type() if "Content-Type" in header else None
    return PartHeaders(
        name=name if isinstance(name, str) else None,
        filename=header.get_filename(),
        content_type=content_type,
    )


class MultipartStream:
    """Parts of a multipart/form-data request, read one after the other."""

    def __init__(self, content: StreamReader, boundary: str) -> None:
        self._content = content
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        # A leading CRLF makes the first delimiter look like every later one.
        self._buf = bytearray(b"\r\n")
        self._in_body = False
        self._done = False

    @classmethod
    def from_request(cls, request: web.Request) -> MultipartStream:
        return cls(request.content, _boundary(request.headers.get("Content-Type", "")))

    async def _fill(self) -> None:
        chunk = await self._content.read(READ_SIZE)
        if not chunk:
            raise MultipartError("body ends before the closing boundary")
        self._buf += chunk

    async def next_part(self) -> PartHeaders | None:
        """Headers of the next part, or None after the closing delimiter."""
        while self._in_body:  # skip what the caller left of the previous part
            await self.read_chunk()
        if self._done:
            return None
        keep = len(self._delimiter) - 1
        while (index := self._buf.find(self._delimiter)) < 0:
            del self._buf[:-keep]  # a preamble is ignored; keep a possible partial delimiter
            await self._fill()
        del self._buf[: index + len(self._delimiter)]
        while len(self._buf) < 2:
            await self._fill()
        if self._buf.startswith(b"--"):
            self._done = True
            return None
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_HEADER_BYTES:
                raise MultipartError("part headers larger than 16 KiB")
            await self._fill()
        headers = _parse_headers(bytes(self._buf[:end]))
        del self._buf[: end + 4]
        self._in_body = True
        return headers

    async def read_chunk(self) -> bytes:
        """The next bytes of the current part's body; b"" once it has ended."""
        keep = len(self._delimiter) - 1
        while self._in_body:
            index = self._buf.find(self._delimiter)
            if index >= 0:
                chunk = bytes(self._buf[:index])
                del self._buf[:index]
                self._in_body = False
                return chunk
            if len(self._buf) > keep:
                chunk = bytes(self._buf[:-keep])
                del self._buf[:-keep]
                return chunk
            await self._fill()
        return b""
