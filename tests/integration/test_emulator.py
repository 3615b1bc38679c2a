"""The emulator over real HTTP: the four endpoints, envelopes, faults, callbacks, control API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edged.emulator import Emulator, EmulatorOptions, run_emulator
from edged.media.samples import make_clip, make_padded_file

KEY = "sk-security-test-key"
FILE_ENDPOINT = "/v1/understand/uploadFile"
FILE_SYNC_ENDPOINT = "/v1/understand/uploadFileSync"
URL_ENDPOINT = "/v1/understand/upload"
URL_SYNC_ENDPOINT = "/v1/understand/uploadSync"
PERSONS = [
    {"name": "Alice", "url": "https://example.com/alice.jpg"},
    {"name": "Bob", "url": "https://example.com/bob.jpg"},
]
TIMEOUT_S = 10.0


def fast(**changes: Any) -> EmulatorOptions:
    """Options with callback delays short enough for tests."""
    quick = EmulatorOptions(callback_delay_s=0.05, callback_retry_delay_s=0.05)
    return dataclasses.replace(quick, **changes)


class CallbackReceiver:
    """A stand-in for edged's callback listener: records bodies, answers scripted statuses."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answered in order, then 200
        self.url = ""
        self._changed = asyncio.Event()

    def callback_url(self, clip: str = "clip-1") -> str:
        return f"{self.url}/callbacks/{clip}/0123456789abcdef0123456789abcdef"

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self._changed.set()
        self._changed = asyncio.Event()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"ok": status == 200}, status=status)

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(TIMEOUT_S):
            while len(self.bodies) < count:
                await self._changed.wait()
        return self.bodies


@pytest.fixture
async def callback_receiver() -> AsyncIterator[CallbackReceiver]:
    callback_receiver = CallbackReceiver()
    app = web.Application()
    app.router.add_post("/callbacks/{clip}/{token}", callback_receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    callback_receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield callback_receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        yield client


async def clip(path: Path, title: str | None = None, seconds: float = 1.0) -> Path:
    return await asyncio.to_thread(make_clip, path, seconds=seconds, title=title)


def request_fields(
    callback_receiver: CallbackReceiver | None = None, **extra: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "user_prompt": "Describe what happens. Say which reference persons appear.",
        "system_prompt": "You are a security camera analyst.",
        "persons": PERSONS,
    }
    if callback_receiver is not None:
        fields["callback"] = callback_receiver.callback_url()
    fields.update(extra)
    return fields


async def form(
    req: dict[str, Any] | str, path: Path, filename: str | None = None
) -> aiohttp.FormData:
    data = await asyncio.to_thread(path.read_bytes)
    payload = aiohttp.FormData()
    text = req if isinstance(req, str) else json.dumps(req)
    payload.add_field("req", text, content_type="application/json")
    # A BytesIO, not bytes: aiohttp warns about large raw bytes bodies.
    payload.add_field(
        "files", io.BytesIO(data), filename=filename or path.name, content_type="video/mp4"
    )
    return payload


async def post(
    session: aiohttp.ClientSession,
    emu: Emulator,
    endpoint: str,
    *,
    key: str | None = KEY,
    **kwargs: Any,
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    headers = {"Authorization": key} if key is not None else {}
    async with session.post(emu.url + endpoint, headers=headers, **kwargs) as response:
        return response.status, await response.json(), response.headers


def persons_block(text: str) -> dict[str, dict[str, Any]]:
    match = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    assert match is not None, text
    return {person["name"]: person for person in json.loads(match.group(1))["persons"]}


async def test_upload_file_acks_then_calls_back_with_person_from_title(
    tmp_path: Path, session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    video = await clip(tmp_path / "front-door.mp4", title="Alice at the door")
    async with run_emulator(fast(api_key=KEY)) as emu:
        status, ack, _ = await post(
            session, emu, FILE_ENDPOINT, data=await form(request_fields(callback_receiver), video)
        )
        assert status == 200
        task_id = ack["data"]["task_id"]
        assert ack == {"code": 0, "msg": "success", "data": {"task_id": task_id}}
        [body] = await callback_receiver.wait_for(1)

    assert body["code"] == 0 and body["message"] == "success" and body["task_id"] == task_id
    assert set(body["data"]["token"]) == {"input", "output", "total"}
    text = body["data"]["data"]["text"]
    assert "Alice appears near the door at 00:00." in text
    assert "There is no sign of Bob." in text
    persons = persons_block(text)
    assert persons["Alice"] == {
        "name": "Alice",
        "present": True,
        "confidence": 0.92,
        "timestamps": [0.5],
    }
    assert persons["Bob"] == {"name": "Bob", "present": False, "confidence": 0.05, "timestamps": []}
    [seen] = emu.received
    assert seen.endpoint == FILE_ENDPOINT and seen.status == 200 and seen.task_id == task_id
    assert seen.authorization == KEY and seen.req["persons"] == PERSONS
    assert seen.file_name == "front-door.mp4"
    expected = await asyncio.to_thread(video.read_bytes)
    assert seen.file_size == len(expected)
    assert seen.file_sha256 == hashlib.sha256(expected).hexdigest()
    assert [(c.task_id, c.status, c.attempt) for c in emu.callbacks_sent] == [(task_id, 200, 1)]


async def test_upload_file_sync_finds_person_from_file_name(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    video = await clip(tmp_path / "bob-in-the-yard.mp4", seconds=2.0)
    async with run_emulator(EmulatorOptions(api_key=KEY)) as emu:
        status, result, _ = await post(
            session, emu, FILE_SYNC_ENDPOINT, data=await form(request_fields(), video)
        )
    assert status == 200
    assert result["code"] == 0 and result["msg"] == "success"
    text = result["data"]["data"]["text"]
    persons = persons_block(text)
    assert persons["Bob"]["present"] and persons["Bob"]["timestamps"] == [1.0]
    assert not persons["Alice"]["present"]
    assert "Bob appears near the door at 00:01." in text and "no sign of Alice" in text
    assert emu.received[0].task_id is None and emu.callbacks_sent == []


async def test_url_endpoints_use_the_last_path_segment(
    session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    video_url = "https://cdn.example.com/clips/alice-front.mp4?signature=abc"
    async with run_emulator(fast()) as emu:
        status, ack, _ = await post(
            session, emu, URL_ENDPOINT, json=request_fields(callback_receiver, video_url=video_url)
        )
        assert status == 200
        [body] = await callback_receiver.wait_for(1)
        status, result, _ = await post(
            session, emu, URL_SYNC_ENDPOINT, json=request_fields(video_url=video_url)
        )
    assert status == 200
    assert body["task_id"] == ack["data"]["task_id"]
    for text in (body["data"]["data"]["text"], result["data"]["data"]["text"]):
        persons = persons_block(text)
        assert persons["Alice"]["present"] and not persons["Bob"]["present"]
    assert [r.file_name for r in emu.received] == ["alice-front.mp4", "alice-front.mp4"]
    assert [r.file_size for r in emu.received] == [None, None]


@pytest.mark.parametrize(
    ("key", "msg"),
    [
        (None, "unauthorized"),
        ("", "unauthorized"),
        ("not-the-key", "unauthorized"),
        (f"Bearer {KEY}", "unauthorized: send the raw API key, without 'Bearer '"),
    ],
)
async def test_unauthorized(session: aiohttp.ClientSession, key: str | None, msg: str) -> None:
    async with run_emulator(EmulatorOptions(api_key=KEY)) as emu:
        status, body, _ = await post(
            session, emu, URL_SYNC_ENDPOINT, key=key, json=request_fields(video_url="http://x/a")
        )
    assert status == 401
    assert body == {"code": "401", "msg": msg}
    assert emu.received[0].status == 401


async def test_any_key_is_accepted_without_api_key(session: aiohttp.ClientSession) -> None:
    async with run_emulator() as emu:
        status, _, _ = await post(
            session,
            emu,
            URL_SYNC_ENDPOINT,
            key="anything",
            json=request_fields(video_url="http://x/a"),
        )
    assert status == 200


def _data_data(text: str, token: dict[str, int]) -> dict[str, Any]:
    return {"data": {"data": {"text": text}, "token": token}}


def _data(text: str, token: dict[str, int]) -> dict[str, Any]:
    return {"data": {"text": text, "token": token}}


def _top(text: str, token: dict[str, int]) -> dict[str, Any]:
    return {"text": text, "token": token}


FLAGS = {"success": True, "failed": False}
Shape = Callable[[str, dict[str, int]], dict[str, Any]]
# variant: (code, ack task id part, task id key in callbacks, result placement, extra fields)
VARIANT_SHAPES: dict[
    str, tuple[int | str, Callable[[str], dict[str, Any]], str, Shape, dict[str, bool]]
] = {
    "code0": (0, lambda t: {"data": {"task_id": t}}, "task_id", _data_data, {}),
    "code0000": ("0000", lambda t: {"data": {"task_id": t}}, "task_id", _data_data, FLAGS),
    "code200": (200, lambda t: {"data": {"task_id": t}}, "task_id", _data, {}),
    "string0": ("0", lambda t: {"data": {"task_id": t}}, "task_id", _data, {}),
    "toplevel_task_id": (0, lambda t: {"task_id": t}, "task_id", _top, {}),
    "taskId": (0, lambda t: {"data": {"taskId": t}}, "taskId", _data_data, {}),
}


@pytest.mark.parametrize("envelope", list(VARIANT_SHAPES))
async def test_envelope_variants(
    envelope: str, session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    code, ack_part, task_key, place, extra = VARIANT_SHAPES[envelope]
    text = "A car parks in the driveway."
    video = "https://cdn.example.com/v/clip.mp4"
    async with run_emulator(fast(envelope=envelope, text=text)) as emu:
        _, ack, _ = await post(
            session, emu, URL_ENDPOINT, json=request_fields(callback_receiver, video_url=video)
        )
        _, result, _ = await post(
            session, emu, URL_SYNC_ENDPOINT, json=request_fields(video_url=video)
        )
        [callback] = await callback_receiver.wait_for(1)
    task_id = emu.received[0].task_id
    assert task_id is not None and task_id.startswith("task-")
    assert ack == {"code": code, "msg": "success", **ack_part(task_id), **extra}
    token = (result.get("data") or {}).get("token") or result["token"]
    assert token["total"] == token["input"] + token["output"]
    assert result == {"code": code, "msg": "success", **place(text, token), **extra}
    callback_token = (callback.get("data") or {}).get("token") or callback["token"]
    assert callback == {
        "code": code,
        "message": "success",
        task_key: task_id,
        **place(text, callback_token),
        **extra,
    }


async def test_fail_next_and_error_rate(session: aiohttp.ClientSession) -> None:
    options = EmulatorOptions(fail_next=[503, 429], retry_after_s=0.25)
    fields = request_fields(video_url="https://cdn.example.com/a.mp4")
    async with run_emulator(options) as emu:
        answers = [await post(session, emu, URL_SYNC_ENDPOINT, json=fields) for _ in range(3)]
        emu.options.error_rate = 1.0
        emu.options.error_statuses = (500,)
        failed = await post(session, emu, URL_SYNC_ENDPOINT, json=fields)
    assert [(status, body["code"]) for status, body, _ in answers] == [
        (503, "503"),
        (429, "429"),
        (200, 0),
    ]
    assert [headers.get("Retry-After") for _, _, headers in answers] == ["0.25", "0.25", None]
    assert answers[0][1] == {"code": "503", "msg": "service unavailable"}
    assert failed[0] == 500 and failed[1]["code"] == "500" and "Retry-After" not in failed[2]
    assert [r.status for r in emu.received] == [503, 429, 200, 500]


async def test_error_envelope_with_http_200(
    tmp_path: Path, session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    video = await clip(tmp_path / "a.mp4")
    options = fast(error_envelope_rate=1.0, envelope="code0000")
    async with run_emulator(options) as emu:
        status, body, _ = await post(
            session, emu, FILE_ENDPOINT, data=await form(request_fields(callback_receiver), video)
        )
    assert status == 200
    assert body == {"code": "5001", "msg": "internal error", "success": False, "failed": True}
    assert emu.received[0].task_id is None and emu.callbacks_sent == []


async def test_over_size_upload_is_413(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    video = await asyncio.to_thread(make_padded_file, tmp_path / "big.mp4", 3 * 1024 * 1024)
    async with run_emulator(EmulatorOptions(max_file_bytes=1024 * 1024)) as emu:
        status, body, _ = await post(
            session, emu, FILE_SYNC_ENDPOINT, data=await form(request_fields(), video)
        )
    assert status == 413
    assert body["code"] == "413" and "1048576" in body["msg"]


async def test_over_duration_is_400(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    video = await clip(tmp_path / "long.mp4", seconds=2.0)
    async with run_emulator(EmulatorOptions(max_duration_s=1.0)) as emu:
        status, body, _ = await post(
            session, emu, FILE_SYNC_ENDPOINT, data=await form(request_fields(), video)
        )
    assert status == 400
    assert body["code"] == "1003" and body["msg"].startswith("duration: 2.0 s")


async def test_not_a_video_is_400(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    junk = tmp_path / "notes.mp4"
    await asyncio.to_thread(junk.write_bytes, b"this is not a video\n" * 500)
    async with run_emulator() as emu:
        status, body, _ = await post(
            session, emu, FILE_SYNC_ENDPOINT, data=await form(request_fields(), junk)
        )
    assert status == 400
    assert body["code"] == "1002" and body["msg"].startswith("invalid video")
    assert emu.received[0].file_size == 10_000


SIX_PERSONS = [{"name": f"P{i}", "url": f"https://example.com/{i}.jpg"} for i in range(6)]


@pytest.mark.parametrize(
    ("change", "msg"),
    [
        ({"persons": SIX_PERSONS}, "persons: at most 5"),
        ({"user_prompt": None}, "user_prompt: required, a non-empty string"),
        ({"system_prompt": 3}, "system_prompt: required, a non-empty string"),
        ({"callback": None}, "callback: required, an http(s) URL"),
        ({"callback": "not a url"}, "callback: required, an http(s) URL"),
        ({"persons": [{"url": "https://e.com/a.jpg"}]}, "persons[0].name: required"),
        ({"persons": [{"name": "A", "url": "ftp://e.com/a.jpg"}]}, "persons[0].url: required"),
        ({"reasoning_effort": 5}, 'reasoning_effort: expected a string "1".."10"'),
        ({"reasoning_effort": "11"}, 'reasoning_effort: expected a string "1".."10"'),
        ({"thinking": "yes"}, "thinking: expected true or false"),
        ({"colour": "red"}, "colour: unknown field"),
        ({"video_url": "https://e.com/a.mp4"}, "video_url: unknown field"),
    ],
)
async def test_bad_req_names_the_field(
    change: dict[str, Any], msg: str, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    video = await clip(tmp_path / "a.mp4")
    fields = {**request_fields(), "callback": "https://edge.example.com/callbacks/1/t", **change}
    fields = {name: value for name, value in fields.items() if value is not None}
    async with run_emulator() as emu:
        status, body, _ = await post(session, emu, FILE_ENDPOINT, data=await form(fields, video))
    assert status == 400
    assert body["code"] == "1001" and body["msg"].startswith(msg)


async def test_unparsable_bodies_are_400(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    video = await clip(tmp_path / "a.mp4")
    only_req = aiohttp.FormData()
    only_req.add_field("req", json.dumps(request_fields()), content_type="application/json")
    text_req = aiohttp.FormData()
    text_req.add_field("req", json.dumps(request_fields()))
    text_req.add_field("files", b"x", filename="a.mp4")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (FILE_SYNC_ENDPOINT, {"data": await form("{not json", video)}, "req: not valid JSON"),
        (FILE_SYNC_ENDPOINT, {"data": only_req}, "files: missing part"),
        (FILE_SYNC_ENDPOINT, {"data": text_req}, "req: expected a part of type application/json"),
        (FILE_SYNC_ENDPOINT, {"json": request_fields()}, "expected a multipart/form-data body"),
        (
            FILE_SYNC_ENDPOINT,
            {
                "data": b"--x\r\nbroken",
                "headers": {"Content-Type": "multipart/form-data; boundary=x"},
            },
            "body ends before the closing boundary",
        ),
        (
            URL_SYNC_ENDPOINT,
            {"data": b"{", "headers": {"Content-Type": "application/json"}},
            "body",
        ),
        (URL_SYNC_ENDPOINT, {"json": [1, 2]}, "req: expected a JSON object"),
    ]
    async with run_emulator() as emu:
        for endpoint, kwargs, msg in cases:
            headers = {"Authorization": KEY, **kwargs.pop("headers", {})}
            async with session.post(emu.url + endpoint, headers=headers, **kwargs) as response:
                body = await response.json()
                assert (response.status, body["code"]) == (400, "1001"), (msg, body)
                assert body["msg"].startswith(msg), body


async def test_duplicate_callbacks(
    session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    fields = request_fields(callback_receiver, video_url="https://cdn.example.com/a.mp4")
    async with run_emulator(fast(duplicate_callbacks=2)) as emu:
        _, ack, _ = await post(session, emu, URL_ENDPOINT, json=fields)
        bodies = await callback_receiver.wait_for(3)
    assert [body["task_id"] for body in bodies] == [ack["data"]["task_id"]] * 3
    assert bodies[0] == bodies[1] == bodies[2]
    assert [c.copy for c in emu.callbacks_sent] == [0, 1, 2]


async def test_drop_callbacks(
    session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    fields = request_fields(callback_receiver, video_url="https://cdn.example.com/a.mp4")
    async with run_emulator(fast(drop_callbacks=True)) as emu:
        status, dropped, _ = await post(session, emu, URL_ENDPOINT, json=fields)
        assert status == 200
        # A later upload's callback, with the same delay, is the marker that the first one
        # would have arrived by now if it had been sent.
        emu.options.drop_callbacks = False
        _, kept, _ = await post(session, emu, URL_ENDPOINT, json=fields)
        bodies = await callback_receiver.wait_for(1)
    assert [body["task_id"] for body in bodies] == [kept["data"]["task_id"]]
    assert dropped["data"]["task_id"] not in {c.task_id for c in emu.callbacks_sent}


async def test_callback_is_retried_after_500(
    session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.statuses = [500]
    fields = request_fields(callback_receiver, video_url="https://cdn.example.com/a.mp4")
    async with run_emulator(fast()) as emu:
        _, ack, _ = await post(session, emu, URL_ENDPOINT, json=fields)
        bodies = await callback_receiver.wait_for(2)
        await emu.wait_for_callbacks(2)
    assert bodies[0] == bodies[1] and bodies[0]["task_id"] == ack["data"]["task_id"]
    assert [(c.attempt, c.status) for c in emu.callbacks_sent] == [(1, 500), (2, 200)]


async def test_unreachable_callback_is_retried_then_given_up(
    session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    url = callback_receiver.callback_url()
    gone = url.replace(
        callback_receiver.url, "http://127.0.0.1:9"
    )  # the discard port: nothing listens
    fields = request_fields(video_url="https://cdn.example.com/a.mp4", callback=gone)
    async with run_emulator(fast(callback_retries=2)) as emu:
        await post(session, emu, URL_ENDPOINT, json=fields)
        sent = await emu.wait_for_callbacks(3)
    assert [c.attempt for c in sent] == [1, 2, 3]
    assert all(c.status is None and c.error for c in sent)


async def test_dropped_connection(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    video = await asyncio.to_thread(make_padded_file, tmp_path / "a.mp4", 4 * 1024 * 1024)
    async with run_emulator(EmulatorOptions(drop_connection_rate=1.0)) as emu:
        with pytest.raises(aiohttp.ClientError):
            await post(session, emu, FILE_ENDPOINT, data=await form(request_fields(), video))
        [seen] = await emu.wait_for_requests(1)
    assert seen.status == 0


async def test_control_endpoints(
    session: aiohttp.ClientSession, callback_receiver: CallbackReceiver
) -> None:
    async with run_emulator(fast()) as emu:
        control = emu.url + "/_emulator"
        async with session.post(
            control + "/options", json={"envelope": "taskId", "fail_next": [503]}
        ) as response:
            assert response.status == 200
            assert (await response.json())["envelope"] == "taskId"
        for bad in ({"no_such_option": 1}, {"error_rate": "high"}, {"envelope": "xml"}, [1]):
            async with session.post(control + "/options", json=bad) as response:
                assert response.status == 400, bad
        async with session.get(control + "/options") as response:
            options = await response.json()
        assert options["fail_next"] == [503] and options["error_rate"] == 0.0

        fields = request_fields(callback_receiver, video_url="https://cdn.example.com/a.mp4")
        failed = await post(session, emu, URL_ENDPOINT, json=fields)
        status, ack, _ = await post(session, emu, URL_ENDPOINT, json=fields)
        assert (failed[0], status) == (503, 200)
        await callback_receiver.wait_for(1)
        await emu.wait_for_callbacks(1)
        async with session.get(control + "/requests") as response:
            requests = await response.json()
        async with session.get(control + "/callbacks") as response:
            callbacks = await response.json()
    assert [(r["endpoint"], r["status"]) for r in requests] == [
        (URL_ENDPOINT, 503),
        (URL_ENDPOINT, 200),
    ]
    assert requests[1]["task_id"] == ack["data"]["taskId"]
    assert requests[1]["req"]["video_url"] == "https://cdn.example.com/a.mp4"
    assert [(c["task_id"], c["status"], c["attempt"]) for c in callbacks] == [
        (ack["data"]["taskId"], 200, 1)
    ]
    assert callbacks[0]["body"]["taskId"] == ack["data"]["taskId"]


async def test_emulator_in_its_own_process(session: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edged.emulator",
        "--port",
        "0",
        "--api-key",
        KEY,
        "--envelope",
        "string0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
        match = re.fullmatch(rb"edged emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match is not None, line
        url = match.group(1).decode()
        async with session.get(url + "/_emulator/options") as response:
            assert (await response.json())["envelope"] == "string0"
        fields = request_fields(video_url="https://cdn.example.com/a.mp4")
        headers = {"Authorization": KEY}
        async with session.post(url + URL_SYNC_ENDPOINT, json=fields, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["code"] == "0"
        async with session.get(url + "/_emulator/requests") as response:
            assert [r["status"] for r in await response.json()] == [200]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode == 0, stderr
    assert URL_SYNC_ENDPOINT.encode() in stderr  # one log line per request
    assert KEY.encode() not in stderr  # the Authorization value is never logged


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_large_upload_streams_without_growing_memory(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    size = 200 * 1024 * 1024
    video = await asyncio.to_thread(make_padded_file, tmp_path / "padded.mp4", size)
    small = await clip(tmp_path / "warmup.mp4")

    async def chunks() -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(video.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, 1024 * 1024):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def sample_peak(stop: asyncio.Event) -> int:
        peak = 0
        while not stop.is_set():
            peak = max(peak, await asyncio.to_thread(_rss_bytes))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)
        return max(peak, await asyncio.to_thread(_rss_bytes))

    async with run_emulator() as emu:
        # The same path once with a small file, so that imports and thread pools are warm.
        assert (
            await post(session, emu, FILE_SYNC_ENDPOINT, data=await form(request_fields(), small))
        )[0] == 200
        baseline = await asyncio.to_thread(_rss_bytes)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_peak(stop))
        with aiohttp.MultipartWriter("form-data") as body:
            req = body.append_json(request_fields())
            req.set_content_disposition("form-data", name="req")
            files = body.append(chunks(), {"Content-Type": "video/mp4"})
            files.set_content_disposition("form-data", name="files", filename="padded.mp4")
            status, result, _ = await post(session, emu, FILE_SYNC_ENDPOINT, data=body)
        stop.set()
        peak = await sampler
    assert status == 200, result
    assert emu.received[-1].file_size == size
    assert peak - baseline < 30 * 1024 * 1024, (baseline, peak)


async def test_early_answers_leave_the_session_usable(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    # 401 and an injected 503 are answered before the upload is read; the next request on
    # the same client session must still go through.
    video = await asyncio.to_thread(make_padded_file, tmp_path / "a.mp4", 3 * 1024 * 1024)
    async with run_emulator(EmulatorOptions(api_key=KEY, fail_next=[503])) as emu:
        answers = [
            (await post(session, emu, FILE_SYNC_ENDPOINT, key=key, data=await form(fields, video)))[
                0
            ]
            for key, fields in [("wrong", request_fields()), (KEY, request_fields())] * 2
        ]
    assert answers == [401, 503, 401, 200]
    assert emu.received[-1].file_size == 3 * 1024 * 1024


async def test_client_gone_mid_upload_is_recorded_without_server_errors(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    class ClientGaveUp(Exception):
        pass

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"\0" * 65536
        raise ClientGaveUp

    async with run_emulator() as emu:
        with aiohttp.MultipartWriter("form-data") as body:
            req = body.append_json(request_fields())
            req.set_content_disposition("form-data", name="req")
            files = body.append(chunks(), {"Content-Type": "video/mp4"})
            files.set_content_disposition("form-data", name="files", filename="a.mp4")
            with pytest.raises((aiohttp.ClientError, ClientGaveUp)):
                await post(session, emu, FILE_SYNC_ENDPOINT, data=body)
        [seen] = await emu.wait_for_requests(1)
    assert seen.status == 400 and seen.file_size is None
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
