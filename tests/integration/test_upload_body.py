"""The uploadFile body judged by parsers that are not edged's: python-multipart and the
stdlib `email` package read what `ApiClient.upload_file` puts on the wire, and it must say
what `requests` (urllib3) says for the same request: the same parts, names, file name,
media types and bytes. Recording names with spaces and non-ASCII characters, as Synology
and other NVRs write them, arrive intact: at a reference parser and at the emulator."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from aiohttp import web
from python_multipart.multipart import MultipartParser, parse_options_header

from edged.emulator import Emulator
from edged.emulator.protocol import ack_body
from edged.upload.api import UPLOAD_FILE, ApiClient
from tests.support.emulator import REQUEST

NAMES = [
    "clip.mp4",
    "Cam 1 – Façade 20261201-120000.mp4",  # Synology Surveillance Station style
    "Einfahrt Süd 2026-12-01 12.00.00.mp4",
    "門口 攝影機 1.mp4",
]


@dataclass(frozen=True)
class Part:
    name: str | None
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Captured:
    content_type: str
    body: bytes


@pytest.fixture
async def capture() -> AsyncIterator[tuple[str, list[Captured]]]:
    """An HTTP endpoint on 127.0.0.1:0 keeping every request's raw body, answering as the
    API acknowledges an upload."""
    seen: list[Captured] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(Captured(request.headers["Content-Type"], await request.read()))
        return web.json_response(ack_body("code0", "task-capture"))

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


def parse_python_multipart(content_type: str, body: bytes) -> list[Part]:
    """The body as python-multipart (Starlette's and FastAPI's parser) reads it."""
    media, options = parse_options_header(content_type)
    assert media == b"multipart/form-data"
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    field, value, data = bytearray(), bytearray(), bytearray()

    def header_end() -> None:
        headers[bytes(field).lower()] = bytes(value)
        field.clear()
        value.clear()

    def part_end() -> None:
        _, disposition = parse_options_header(headers[b"content-disposition"])
        kind = headers.get(b"content-type")
        name, filename = disposition.get(b"name"), disposition.get(b"filename")
        parts.append(
            Part(
                name.decode() if name is not None else None,
                filename.decode() if filename is not None else None,
                parse_options_header(kind)[0].decode() if kind else None,
                bytes(data),
            )
        )
        headers.clear()
        data.clear()

    callbacks = {
        "on_header_field": lambda b, s, e: field.extend(b[s:e]),
        "on_header_value": lambda b, s, e: value.extend(b[s:e]),
        "on_header_end": header_end,
        "on_part_data": lambda b, s, e: data.extend(b[s:e]),
        "on_part_end": part_end,
    }
    parser = MultipartParser(options[b"boundary"], callbacks)  # type: ignore[arg-type]
    assert parser.write(body) == len(body)
    parser.finalize()
    return parts


def parse_email(content_type: str, body: bytes) -> list[Part]:
    """The body as the stdlib `email` package reads it (headers are taken as UTF-8, as the
    HTML standard has form-data written)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert message.is_multipart() and not message.defects, message.defects

    def text(value: str | None) -> str | None:
        # A header byte the policy could not decode comes back as a surrogate escape: back to
        # its byte, and the bytes read as UTF-8.
        return None if value is None else value.encode("utf-8", "surrogateescape").decode()

    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        parts.append(
            Part(
                text(name if isinstance(name, str) else None),
                text(part.get_filename()),
                part.get_content_type(),
                payload,
            )
        )
    return parts


def sent_by_requests(url: str, path: Path) -> Captured:
    """Blocking: the same request as requests would encode it (prepared, not sent)."""
    req = json.dumps(REQUEST.to_json()).encode()
    files = [
        ("req", (None, req, "application/json")),
        ("files", (path.name, path.read_bytes(), "video/mp4")),
    ]
    prepared = requests.Request("POST", url + UPLOAD_FILE, files=files).prepare()
    assert isinstance(prepared.body, bytes)
    return Captured(prepared.headers["Content-Type"], prepared.body)


def comparable(parts: list[Part]) -> list[Part]:
    """The JSON part by its value (spacing is not meaning), every other part by its bytes."""
    return [
        Part(p.name, p.filename, p.content_type, json.dumps(json.loads(p.data)).encode())
        if p.content_type == "application/json"
        else p
        for p in parts
    ]


def disposition_lines(body: bytes) -> list[bytes]:
    return [line for line in body.split(b"\r\n") if line.lower().startswith(b"content-disp")]


@pytest.mark.parametrize("name", NAMES)
async def test_the_upload_body_reads_as_requests_encodes_it(
    capture: tuple[str, list[Captured]], clip_factory, name: str
):
    url, seen = capture
    clip = await clip_factory(name)
    async with ApiClient(url, "k") as api:
        ack = await api.upload_file(clip, REQUEST)
    assert ack.ok and ack.task_id == "task-capture"
    [edged] = seen
    reference = await asyncio.to_thread(sent_by_requests, url, clip)
    data = await asyncio.to_thread(clip.read_bytes)

    for parse in (parse_python_multipart, parse_email):
        ours, theirs = parse(edged.content_type, edged.body), parse(*vars(reference).values())
        assert comparable(ours) == comparable(theirs), parse.__name__
        req, files = ours
        assert (req.name, req.filename, req.content_type) == ("req", None, "application/json")
        assert json.loads(req.data) == REQUEST.to_json()
        assert (files.name, files.filename, files.content_type) == ("files", name, "video/mp4")
        assert files.data == data, "the file part is the clip, byte for byte"
    # Header for header, the file part is described as requests describes it.
    assert disposition_lines(edged.body)[1] == disposition_lines(reference.body)[1]


@pytest.mark.parametrize("name", NAMES[1:])
async def test_a_recording_name_with_spaces_and_accents_reaches_the_service_intact(
    emulator: Emulator, clip_factory, name: str
):
    clip = await clip_factory(name)
    async with ApiClient(emulator.url, "k") as api:
        ack = await api.upload_file(clip, REQUEST)
    assert ack.ok
    [received] = emulator.received
    assert received.file_name == name


async def test_a_slow_but_steady_link_is_not_a_stalled_upload(tmp_path: Path) -> None:
    """A service that reads about 5 MiB a second, with a stall timeout of 2 s: a 12 MiB clip
    takes longer than that to go, yet bytes move all the time, so it must go through (the
    stall timeout counts per chunk, not per 16 MiB read-ahead slice)."""
    received = bytearray()

    async def slow_service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?i)content-length: *(\d+)", head)
            assert found is not None
            while len(received) < int(found.group(1)):
                data = await reader.read(512 * 1024)
                if not data:
                    return
                received.extend(data)
                await asyncio.sleep(0.1)
            answer = b'{"code": "0000", "msg": "ok", "data": {"taskId": "t-1"}}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
            )  # fmt: skip
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(slow_service, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(12 << 20))
    try:
        async with ApiClient(f"http://127.0.0.1:{port}", "k", request_timeout_s=2) as api:
            envelope = await api.upload_file(clip, REQUEST)
    finally:
        server.close()
        await server.wait_closed()
    assert envelope.task_id == "t-1"
    assert clip.read_bytes() in bytes(received)  # the whole clip, as it is on disk
