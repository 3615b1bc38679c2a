"""The public listener attacked as the internet would, against a real `edged run`.

Only the cloud's own callback (a token edged issued for that clip, while the clip waits for
its result) changes anything; forged, malformed and hostile requests get 404 or 400, never
500, and change no row of the ledger; slow and idle connections are closed on deadlines and
cannot lock out the cloud or the cameras; `api.mode: sync` opens no port it does not need.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edged.clip import NewClip
from edged.emulator import Emulator
from edged.ledger.store import Ledger
from tests.support.edged import callbacks_held, clip_id_of, config_text, folder_config, run_edged
from tests.support.edged_process import EdgedProcess, running
from tests.support.environment import free_port

pytestmark = pytest.mark.timeout(150)

VERDICT = {"persons": [{"name": "Alice", "present": True, "confidence": 0.9, "timestamps": [0.5]}]}
TEXT = "Alice walks to the gate.\n\n```json\n" + json.dumps(VERDICT) + "\n```\n"


def caption(task_id: str | None, text: str = TEXT, **token: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": 0, "data": {"text": text, "token": token or {"total": 9}}}
    if task_id is not None:
        body["task_id"] = task_id
    return body


async def post(url: str, body: bytes | dict[str, Any]) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as http, http.post(url, data=data) as answer:
        return answer.status


async def raw_request(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return answer


async def tokens_of(edged: EdgedProcess, clip_id: int) -> list[dict[str, Any]]:
    return await edged.rows(
        "SELECT attempt, token, task_id FROM callback_tokens WHERE clip_id=? ORDER BY attempt",
        clip_id,
    )


async def state_of(edged: EdgedProcess, name: str) -> dict[str, Any] | None:
    rows = await edged.rows("SELECT * FROM clips WHERE path LIKE ?", f"%/{name}")
    return rows[0] if rows else None


async def metric(edged: EdgedProcess, name: str, **labels: str) -> float:
    address = f"http://{edged.metrics}/metrics"
    async with aiohttp.ClientSession() as http, http.get(address) as answer:
        text = await answer.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# ---- forged results -----------------------------------------------------------------------

FORGED = {
    "nul": "%00" * 22,
    "whitespace": "%20" * 22,
    "too-short": "abc",
    "right-form-wrong-value": secrets.token_urlsafe(16),
    "unicode": "é" * 22,
}


async def test_forged_tokens_on_a_queued_clip_change_nothing(tmp_path: Path, emulator: Emulator):
    """A clip not yet uploaded has no token: nothing can be posted as its result (before, 22
    NUL characters matched and "Nobody is there." closed the clip unseen)."""
    emulator.options.api_key = "the-real-key"  # edged's is refused: its uploads pause
    async with running(folder_config(tmp_path, emulator.url)) as edged:
        await edged.add_clip("gate-001.mp4")
        await edged.until(lambda: edged.logged("uploads paused") > 0, "uploads to pause")

        clip = await edged.clip_in("gate-001.mp4", "queued")
        before = await edged.dump()
        for what, token in FORGED.items():
            status = await post(
                f"{edged.url}/callbacks/{clip['id']}/{token}", caption(None, "Nobody is there.")
            )
            assert status == 404, what
        assert await post(f"{edged.url}/callbacks/{clip['id']}/", caption(None)) == 404
        assert await edged.dump() == before
        assert not any("Traceback" in line for line in edged.lines())


async def test_an_earlier_attempts_late_result_is_kept_and_saves_an_upload(
    tmp_path: Path, emulator: Emulator
):
    """Attempt 1's callback comes after the clip was sent again: it is accepted with attempt
    1's token (no third upload); attempt 2's callback, after it, is a 200 that changes
    nothing."""
    emulator.options.callback_faults = ["drop"]  # attempt 1's callback never comes by itself
    posted = asyncio.Event()

    async def after_our_post(delivery: Any) -> bool:
        return posted.is_set()

    async with (
        callbacks_held(emulator, after_our_post),
        running(folder_config(tmp_path, emulator.url, callback="  result_timeout: 2s\n")) as edged,
    ):
        await edged.add_clip("gate-001.mp4")

        async def resubmitted() -> bool:
            clip = await state_of(edged, "gate-001.mp4")
            return clip is not None and clip["attempts"] == 2 and clip["state"] == "submitted"

        await edged.until(resubmitted, "the clip sent a second time")
        clip = await state_of(edged, "gate-001.mp4")
        assert clip is not None
        first, second = await tokens_of(edged, clip["id"])
        assert first["task_id"] and second["task_id"] and first["task_id"] != second["task_id"]
        url = f"{edged.url}/callbacks/{clip['id']}/{first['token']}"
        assert await post(url, caption(first["task_id"])) == 200
        posted.set()

        async def attempt_two_answered() -> bool:
            return any(
                record.status == 200 and clip_id_of(record) == clip["id"]
                for record in emulator.callbacks_sent
            )

        await edged.until(attempt_two_answered, "attempt 2's callback answered")

        await edged.clip_in("gate-001.mp4", "done")
        results = await edged.rows("SELECT task_id, text FROM results")
        assert results == [{"task_id": first["task_id"], "text": TEXT}]
        assert len([r for r in emulator.received if r.status == 200]) == 2
        # Once the clip has its result, any of its tokens is a 200 that changes nothing.
        before = await edged.dump()
        assert await post(url, caption(first["task_id"], "Nobody is there.")) == 200
        assert await edged.dump() == before


# ---- deadlines and the connection cap -----------------------------------------------------

LIMITS = "  result_timeout: 30s\n  head_timeout: 1s\n  body_timeout: 1s\n  max_connections: 64\n"


async def _held_open(port: int, head: bytes) -> float:
    """Seconds until edged closes a connection that sent `head` and then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    started = time.monotonic()
    try:
        await asyncio.wait_for(reader.read(), 15)
    except TimeoutError:
        pytest.fail(f"a connection that sent {head[:40]!r} was still open after 15 s")
    finally:
        writer.close()
    return time.monotonic() - started


async def test_slow_heads_bodies_and_idle_connections_are_closed(
    tmp_path: Path, emulator: Emulator
):
    emulator.options.callback_faults = ["drop"]  # the clip waits for its result meanwhile
    async with running(folder_config(tmp_path, emulator.url, callback=LIMITS)) as edged:
        await edged.add_clip("gate-001.mp4")

        clip = await edged.clip_in("gate-001.mp4", "submitted")
        path = f"/callbacks/{clip['id']}/{clip['callback_token']}"
        half_head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Ty".encode()
        assert await _held_open(edged.port, half_head) < 8
        assert await _held_open(edged.port, b"") < 8  # connected, sent nothing
        slow_body = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            'Content-Length: 1000\r\n\r\n{"status": 0'
        ).encode()
        assert await _held_open(edged.port, slow_body) < 8
        # An answered request on a kept-alive connection that then idles.
        idle = b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
        assert await _held_open(edged.port, idle) < 8
        assert (await state_of(edged, "gate-001.mp4") or {}).get("state") == "submitted"
        assert await metric(edged, "edged_listener_connections_closed_total", reason="head_timeout")


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("addresses", [30, 500], ids=["30-addresses", "500-addresses"])
async def test_a_thousand_idle_connections_lock_out_neither_the_cloud_nor_the_cameras(
    tmp_path: Path, emulator: Emulator, addresses: int
):
    """From a few addresses holding many connections each, or from many holding one or two
    (a botnet, an IPv6 range): the cloud's callback from its own address still gets in."""
    emulator.options.callback_faults = ["drop"]
    callback = "  result_timeout: 30s\n  head_timeout: 60s\n  max_connections: 128\n"
    async with running(folder_config(tmp_path, emulator.url, callback=callback)) as edged:
        await edged.add_clip("gate-001.mp4")

        clip = await edged.clip_in("gate-001.mp4", "submitted")
        writers = []
        try:
            for number in range(1000):
                # From other addresses: the cloud's callback comes from its own.
                spread = 2 + number % addresses
                source = (f"127.0.{spread // 250}.{2 + spread % 250}", 0)
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", edged.port, local_addr=source
                )
                writer.write(b"POST /callbacks/1/x HTTP/1.1\r\nHost: x\r\n")
                writers.append(writer)
            # Past the caps, edged refuses (resets) the newest: that is the point.
            await asyncio.gather(*(writer.drain() for writer in writers), return_exceptions=True)
            await edged.until(lambda: _open_fds(edged.pid) < 128 + 64, "edged to shed connections")
            # The cloud's callback gets through at once, and a camera's new recording is queued.
            started = time.monotonic()
            url = f"{edged.url}/callbacks/{clip['id']}/{clip['callback_token']}"
            assert await post(url, caption(clip["task_id"])) == 200
            assert time.monotonic() - started < 5
            await edged.add_clip("gate-002.mp4")
            await edged.until(
                lambda: state_of(edged, "gate-002.mp4"), "the new recording in the ledger"
            )
            assert _open_fds(edged.pid) < 128 + 64
            shed = sum(
                [
                    await metric(edged, "edged_listener_connections_closed_total", reason=why)
                    for why in ("refused", "evicted")
                ]
            )
            assert shed >= 1000 - 128 - 64
        finally:
            for writer in writers:
                writer.close()


# ---- api.mode: sync -------------------------------------------------------------------------


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sync_mode_opens_no_public_port(tmp_path: Path, emulator: Emulator):
    async with running(folder_config(tmp_path, emulator.url, api="  mode: sync\n")) as edged:
        await edged.add_clip("gate-001.mp4")

        await edged.clip_in("gate-001.mp4", "done")
        assert await _refused(edged.port)
        assert edged.logged("public listener: none") == 1


async def test_sync_mode_with_local_images_serves_only_them(tmp_path: Path, emulator: Emulator):
    image = tmp_path / "alice.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    port, metrics = free_port(), f"127.0.0.1:{free_port()}"
    text = config_text(tmp_path, emulator.url, port=port, metrics=metrics, api="  mode: sync\n")
    text = text.replace("    url: https://example.com/alice.jpg\n", f"    image: {image}\n")
    async with running(folder_config(tmp_path, emulator.url, text=text)) as edged:
        await edged.add_clip("gate-001.mp4")

        async def uploaded() -> bool:
            return any(r.status == 200 for r in emulator.received)

        await edged.until(uploaded, "the clip uploaded")
        person_url = emulator.received[0].req["persons"][0]["url"]
        assert person_url.startswith(f"http://127.0.0.1:{port}/persons/")
        async with aiohttp.ClientSession() as http, http.get(person_url) as answer:
            assert answer.status == 200 and await answer.read() == image.read_bytes()
        clip = await state_of(edged, "gate-001.mp4")
        assert clip is not None and clip["callback_token"]
        url = f"{edged.url}/callbacks/{clip['id']}/{clip['callback_token']}"
        assert await post(url, caption(None)) == 404
        assert edged.logged("only for the local person images") == 1


# ---- hostile URLs and bodies: 404 or 400, never 500 ---------------------------------------


async def test_hostile_urls_and_bodies_get_404_or_400_and_what_can_be_kept_is_kept(
    tmp_path: Path, emulator: Emulator
):
    emulator.options.callback_faults = ["drop", "drop", "drop"]
    async with running(folder_config(tmp_path, emulator.url)) as edged:
        for number in (1, 2, 3):
            await edged.add_clip(f"gate-00{number}.mp4")

        async def all_submitted() -> bool:
            rows = await edged.rows("SELECT state FROM clips")
            return len(rows) == 3 and all(row["state"] == "submitted" for row in rows)

        await edged.until(all_submitted, "three clips submitted")
        clips = await edged.rows("SELECT id, callback_token, task_id FROM clips ORDER BY id")
        deep, non_finite, surrogate = (
            f"{edged.url}/callbacks/{c['id']}/{c['callback_token']}" for c in clips
        )
        before = await edged.dump()
        for path in ("/callbacks/%C2%B2/" + "a" * 22, "/callbacks/١٢/" + "a" * 22):
            assert await post(edged.url + path, caption(None)) == 404
        picture = "al_" + "0" * 24 + ".jpg"  # of the form alert pictures have
        link = f"{edged.url}/snapshots/gate/{picture}?expires=%C2%B2&sig=x"
        async with aiohttp.ClientSession() as http, http.get(link) as answer:
            assert answer.status == 404
        assert await post(deep, b'{"status": 0, "data": ' + b"[" * 100_000 + b"]" * 100_000) == 400
        assert await edged.dump() == before

        numbers = b'{"status": 0, "data": {"text": "A cat.", "token": {"input": 1e999,'
        numbers += b' "output": NaN, "total": -Infinity}}}'
        assert await post(non_finite, numbers) == 200
        lone = b'{"status": 0, "data": {"text": "Alice \\ud800 at the gate.", "token": {}}}'
        assert await post(surrogate, lone) == 200
        results = await edged.rows("SELECT * FROM results ORDER BY clip_id")
        by_clip = {row["clip_id"]: row for row in results}
        kept = by_clip[clips[1]["id"]]
        assert kept["text"] == "A cat." and kept["tokens_input"] is None
        assert kept["tokens_output"] is None and kept["tokens_total"] is None
        assert by_clip[clips[2]["id"]]["text"] == "Alice \ufffd at the gate."
        assert not any("Traceback" in line or "Error handling" in line for line in edged.lines())


async def test_rejections_are_counted_and_logged_once_a_minute(tmp_path: Path, emulator: Emulator):
    async with running(folder_config(tmp_path, emulator.url)) as edged:
        async with aiohttp.ClientSession() as http:
            for number in range(300):
                async with http.post(f"{edged.url}/callbacks/{number}/{'a' * 22}") as answer:
                    assert answer.status == 404
                    assert answer.headers["Server"] == "edged"  # no Python or aiohttp version
        assert await metric(
            edged, "edged_callbacks_rejected_total", reason="unknown_clip_or_token"
        ) == pytest.approx(300)
        assert edged.logged("turned away") == 1


async def test_escape_sequences_from_outside_never_reach_a_terminal_or_the_log(
    tmp_path: Path, emulator: Emulator
):
    emulator.options.callback_faults = ["drop"]
    forged = "\x1b[2J\x1b[31mALERT\nWARNING edged: forged line"
    async with running(folder_config(tmp_path, emulator.url)) as edged:
        await edged.add_clip("gate-001.mp4")

        clip = await edged.clip_in("gate-001.mp4", "submitted")
        url = f"{edged.url}/callbacks/{clip['id']}/{clip['callback_token']}"
        assert await post(url, caption(forged)) == 409
        await edged.until(lambda: edged.logged("does not match") > 0, "the mismatch logged")
        assert not any("\x1b" in line for line in edged.lines())
        assert not any(line.startswith("WARNING edged: forged") for line in edged.lines())
    # What the service says (a task id, an error) reaches `edged status` escaped too.
    ledger = Ledger(tmp_path / "state")
    try:
        added, _ = ledger.clips.add(NewClip("gate", tmp_path / "x.mp4", 10))
        ledger.uploads.take_for_upload(added.id)
        ledger.uploads.mark_submitted(added.id, forged)
    finally:
        ledger.close()
    code, out, _ = await run_edged("status", "-c", str(edged.config), "--clip", str(added.id))
    assert code == 0 and "\x1b" not in out
    assert re.search(r"\\x1b\[2J", out) and "\nWARNING edged: forged" not in out


async def test_the_emulators_request_log_does_not_hand_out_keys(emulator: Emulator, clip_factory):
    from edged.upload.api import AnalysisRequest, ApiClient

    async with ApiClient(emulator.url, "a-secret-key") as api:
        request = AnalysisRequest("u", "s", "http://127.0.0.1:9/callbacks/1/x")
        await api.upload_file(await clip_factory(), request)
    log_url = f"{emulator.url}/_emulator/requests"
    async with aiohttp.ClientSession() as http, http.get(log_url) as answer:
        text = await answer.text()
    assert "a-secret-key" not in text and json.loads(text)[0]["authorization"] == "***"
