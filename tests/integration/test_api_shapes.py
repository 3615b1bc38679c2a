"""Every answer and callback shape API.md documents, and every business code, read right.

Answers come from the emulator over HTTP (its `refuse_code` answers a documented code inside
an HTTP 200 envelope or as the aligned HTTP status); callbacks are posted over HTTP to the
real listener, one documented shape at a time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edged.clip import Clip, ClipState, NewClip
from edged.commands.status import build_report
from edged.emulator import Emulator
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.results.callback_server import CallbackServer
from edged.results.listener import CallbackApp
from edged.service.metrics import read_snapshot
from edged.upload.api import AnalysisRequest, ApiClient, ApiError
from edged.upload.api_codes import BUSINESS_CODES, Failure, PauseReason

REQUEST = AnalysisRequest(user_prompt="Who is there?", system_prompt="You watch a camera.")
CALLBACK = "http://127.0.0.1:9/callbacks/1/x"

#: What each documented business code must mean (API.md), whichever way it arrives.
EXPECTED: dict[str, tuple[Failure, PauseReason | None]] = {
    "0001": (Failure.TRANSIENT, None),
    "0003": (Failure.PERMANENT, None),
    "0401": (Failure.PAUSED, PauseReason.REFUSED_KEY),
    "0402": (Failure.PAUSED, PauseReason.NO_CREDIT),
    "0403": (Failure.PAUSED, PauseReason.REFUSED_KEY),
    "0409": (Failure.DUPLICATE, None),
    "0429": (Failure.TRANSIENT, None),
    "9009": (Failure.PAUSED, PauseReason.NO_PERMISSION),
}
#: The newer page's HTTP statuses, each as a status and as a body code.
EXPECTED_HTTP: dict[int, tuple[Failure, PauseReason | None]] = {
    400: (Failure.PERMANENT, None),
    401: (Failure.PAUSED, PauseReason.REFUSED_KEY),
    402: (Failure.PAUSED, PauseReason.NO_CREDIT),
    403: (Failure.PAUSED, PauseReason.REFUSED_KEY),
    405: (Failure.PERMANENT, None),
    409: (Failure.DUPLICATE, None),
    415: (Failure.PERMANENT, None),
    429: (Failure.TRANSIENT, None),
    500: (Failure.TRANSIENT, None),
}


def test_the_table_covers_every_documented_code():
    assert set(BUSINESS_CODES) == set(EXPECTED)


async def _refused(emulator: Emulator, clip: Path, code: str, status: int) -> ApiError:
    emulator.options.update({"refuse_code": code, "refuse_status": status})
    async with ApiClient(emulator.url, "test-key") as api:
        with pytest.raises(ApiError) as caught:
            await api.upload_file(clip, REQUEST)
    return caught.value


@pytest.mark.parametrize("code", sorted(EXPECTED))
async def test_business_code_in_a_200_envelope(emulator: Emulator, clip_factory, code: str):
    error = await _refused(emulator, await clip_factory(), code, 200)
    assert (error.failure, error.pause) == EXPECTED[code], str(error)
    assert error.code == code and error.status == 200


@pytest.mark.parametrize("status", sorted(EXPECTED_HTTP))
async def test_http_status_and_the_same_number_as_a_body_code_mean_the_same(
    emulator: Emulator, clip_factory, status: int
):
    clip = await clip_factory()
    as_status = await _refused(emulator, clip, str(status), status)
    as_code = await _refused(emulator, clip, str(status), 200)
    assert (as_status.failure, as_status.pause) == EXPECTED_HTTP[status], str(as_status)
    assert (as_code.failure, as_code.pause) == EXPECTED_HTTP[status], str(as_code)


async def test_a_business_code_under_an_http_status_is_read_by_the_code(
    emulator: Emulator, clip_factory
):
    """A 400 whose body says 0402 is out of credit, not a bad clip."""
    error = await _refused(emulator, await clip_factory(), "0402", 400)
    assert (error.failure, error.pause) == (Failure.PAUSED, PauseReason.NO_CREDIT)
    assert "out of credit" in str(error)


async def test_reasoning_effort_is_sent_only_when_set(emulator: Emulator, clip_factory):
    clip = await clip_factory()
    async with ApiClient(emulator.url, "test-key") as api:
        # thinking false and no effort, then thinking with no effort: no field either time
        await api.upload_file(clip, AnalysisRequest("u", "s", callback=CALLBACK))
        await api.upload_file(clip, AnalysisRequest("u", "s", CALLBACK, thinking=True))
        await api.upload_file(clip, AnalysisRequest("u", "s", CALLBACK, reasoning_effort="3"))
    sent = [request.req for request in emulator.received]
    assert "reasoning_effort" not in sent[0] and "reasoning_effort" not in sent[1]
    assert sent[2]["reasoning_effort"] == "3"


# ---- callbacks: each documented shape, over HTTP to the real listener ----------------------

CAPTION_OK = {
    "status": 0,
    "task_id": "task-1",
    "data": {
        "text": "A man enters the room. Alice is identified by the reference image.",
        "token": {"input": 123, "output": 456, "total": 579},
    },
}
VENDOR_OK = {
    "code": "0000",
    "message": "SUCCESS",
    "data": {"data": {"text": "Alice walks in."}, "msg": "ok", "success": True},
    "task_id": "task-1",
    "token": {"input": 1, "output": 2, "total": 3},
}
ENVELOPE_OK = {
    "code": 0,
    "msg": "success",
    "data": {"data": {"text": "Alice walks in."}, "token": {"input": 5, "output": 6, "total": 11}},
}
TOP_LEVEL_OK = {"code": "0", "taskId": "task-1", "text": "Alice walks in.", "token": {"total": 7}}
CAPTION_FAILED = {"status": -1, "task_id": "task-1", "data": {}}
VENDOR_FAILED = {"code": "5001", "message": "analysis failed", "task_id": "task-1"}
FLAGGED_FAILED = {"code": "0000", "success": False, "failed": True, "msg": "no"}


@pytest.fixture
async def listener(
    tmp_path: Path,
) -> AsyncIterator[tuple[str, AsyncLedger, Clip, CallbackApp]]:
    db = AsyncLedger(Ledger(tmp_path / "state"))
    await db.call(db.ledger.clips.add, NewClip("cam", tmp_path / "c.mp4", 10))
    clip = await db.call(db.ledger.uploads.take_for_upload)
    await db.call(db.ledger.uploads.mark_submitted, clip.id, "task-1")
    app = CallbackApp(db, max_attempts=3)
    server = CallbackServer(app, "127.0.0.1", 0)
    async with server:
        url = f"http://127.0.0.1:{server.port}/callbacks/{clip.id}/{clip.callback_token}"
        yield url, db, clip, app
    await db.aclose()


async def _post(url: str, body: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, data=json.dumps(body)) as answer:
        return answer.status


@pytest.mark.parametrize(
    ("body", "text", "total"),
    [
        (CAPTION_OK, CAPTION_OK["data"]["text"], 579),
        (VENDOR_OK, "Alice walks in.", 3),
        (ENVELOPE_OK, "Alice walks in.", 11),
        (TOP_LEVEL_OK, "Alice walks in.", 7),
    ],
    ids=["caption-status-0", "vendor-code-0000", "code-0-data-data", "top-level"],
)
async def test_success_shapes_are_results_with_text_and_tokens(
    listener, body: dict[str, Any], text: str, total: int
):
    url, db, clip, _app = listener
    assert await _post(url, body) == 200
    stored = await db.call(db.ledger.clips.get, clip.id)
    result = await db.call(db.ledger.results.result, clip.id)
    assert stored.state is ClipState.ANALYZED
    assert result.text == text and result.tokens_total == total and result.task_id == "task-1"
    # The tokens reach the metric and `edged status`.
    snapshot = await db.call(read_snapshot, db.ledger, result.received_at)
    report = await db.call(build_report, db.ledger)
    assert snapshot.tokens_today == total and report.tokens_today == total


@pytest.mark.parametrize(
    "body",
    [CAPTION_FAILED, VENDOR_FAILED, FLAGGED_FAILED],
    ids=["caption-status-minus-1", "vendor-error-code", "success-false"],
)
async def test_failure_shapes_resubmit_the_clip(listener, body: dict[str, Any]):
    url, db, clip, _app = listener
    assert await _post(url, body) == 200
    stored = await db.call(db.ledger.clips.get, clip.id)
    assert stored.state is ClipState.RETRY_WAIT and "analysis failed" in stored.last_error
    assert await db.call(db.ledger.results.result, clip.id) is None


async def test_caption_callback_with_a_wrong_task_id_is_refused(listener):
    url, db, clip, _app = listener
    assert await _post(url, {**CAPTION_OK, "task_id": "someone-else"}) == 409
    assert (await db.call(db.ledger.clips.get, clip.id)).state is ClipState.SUBMITTED


async def test_check_config_says_which_listener_runs_and_what_has_no_effect(tmp_path: Path):
    from tests.support.edged import run_edged, write_config

    config = write_config(
        tmp_path, "http://127.0.0.1:9", api_extra='  reasoning_effort: "3"\n  mode: sync\n'
    )
    code, out, err = await run_edged("check-config", "-c", str(config))
    assert code == 0, err
    notes = [line for line in out.splitlines() if line.startswith("# ")]
    assert any("public listener: none (api.mode sync" in line for line in notes), out
    assert any("api.reasoning_effort has no effect" in line for line in notes), out
    assert any("callback.public_url has no effect" in line for line in notes), out
    async_config = write_config(tmp_path, "http://127.0.0.1:9")
    code, out, _ = await run_edged("check-config", "-c", str(async_config))
    assert "# public listener: port" in out and "has no effect" not in out


async def test_upload_reads_only_a_regular_file_never_a_link_or_a_fifo(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    """What the uploader opens is the recording itself: a FIFO swapped in after the probe
    would have blocked a worker for good, a link would have sent another file."""
    import asyncio
    import os

    from edged.upload.api import FileChanged

    clip = await clip_factory()
    fifo, link = tmp_path / "swapped.mp4", tmp_path / "link.mp4"
    os.mkfifo(fifo)
    link.symlink_to(clip)
    async with ApiClient(emulator.url, "test-key") as api:
        for path in (fifo, link):
            with pytest.raises(FileChanged):
                await asyncio.wait_for(api.upload_file(path, REQUEST), 10)
    assert emulator.received == []


async def test_a_callback_saying_no_credit_pauses_uploads_and_gives_the_attempt_back(listener):
    url, db, clip, app = listener
    pauses: list[tuple[PauseReason, str]] = []

    async def paused(why: PauseReason, reason: str) -> None:
        pauses.append((why, reason))

    app.on_pause = paused
    body = {"status": -1, "code": "0402", "msg": "not enough points", "task_id": "task-1"}
    assert await _post(url, body) == 200
    stored = await db.call(db.ledger.clips.get, clip.id)
    assert stored.state is ClipState.QUEUED and stored.attempts == clip.attempts - 1
    assert [why for why, _ in pauses] == [PauseReason.NO_CREDIT]
    assert "out of credit" in stored.last_error


async def test_the_emulators_options_do_not_show_the_key_and_odd_statuses_are_answered(
    emulator: Emulator, clip_factory
):
    emulator.options.update({"api_key": "sk-secret", "fail_next": [599, 499]})
    options_url = f"{emulator.url}/_emulator/options"
    async with aiohttp.ClientSession() as http, http.get(options_url) as answer:
        text = await answer.text()
    assert "sk-secret" not in text and json.loads(text)["api_key"] == "***"
    clip = await clip_factory()
    async with ApiClient(emulator.url, "sk-secret") as api:
        for expected in (Failure.TRANSIENT, Failure.PERMANENT):
            with pytest.raises(ApiError) as caught:
                await api.upload_file(clip, AnalysisRequest("u", "s", CALLBACK))
            assert caught.value.failure is expected and caught.value.status in (599, 499)
