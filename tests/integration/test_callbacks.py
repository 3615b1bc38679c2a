"""The public callback listener over real HTTP: only a correctly tokened callback of a known
clip touches the ledger; repeats are no-ops; person images are served and nothing else."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest

from edged.clip import ClipState
from edged.ledger.thread import AsyncLedger
from tests.support.listener import RESULT


async def _snapshot(db: AsyncLedger) -> list[tuple]:
    rows = await db.call(db.ledger.db.rows, "SELECT id, state, attempts, task_id FROM clips")
    results = await db.call(db.ledger.db.rows, "SELECT clip_id, text FROM results")
    return [tuple(r) for r in rows] + [tuple(r) for r in results]


async def test_correct_callback_commits_then_answers_200(listener):
    url, db, clip = listener
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{url}/callbacks/{clip.id}/{clip.callback_token}", json=RESULT)
    assert response.status == 200
    stored = await db.call(db.ledger.clips.get, clip.id)
    result = await db.call(db.ledger.results.result, clip.id)
    assert stored.state is ClipState.ANALYZED
    assert result.text == "Alice walks in." and result.tokens_total == 9


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/callbacks/{id}/wrong-token-wrong-token", RESULT, 404),
        ("POST", "/callbacks/999/{token}", RESULT, 404),
        ("POST", "/callbacks/not-a-number/{token}", RESULT, 404),
        ("GET", "/callbacks/{id}/{token}", None, 404),
        ("POST", "/callbacks/{id}", RESULT, 404),
        ("GET", "/", None, 404),
        ("POST", "/v1/understand/uploadFile", RESULT, 404),
        ("GET", "/persons/wrong-token/0.jpg", None, 404),
        ("GET", "/persons/person-token/../../etc/passwd", None, 404),
        ("GET", "/persons/person-token/1.jpg", None, 404),
        ("POST", "/callbacks/{id}/{token}", b"not json at all", 400),
        ("POST", "/callbacks/{id}/{token}", b"x" * (1024 * 1024 + 1), 413),
        ("POST", "/callbacks/{id}/{token}", {"code": 0, "task_id": "task-1", "data": {}}, 400),
        ("POST", "/callbacks/{id}/{token}", {**RESULT, "task_id": "someone-else"}, 409),
    ],
)
async def test_bad_requests_change_nothing(listener, method, path, body, status):
    url, db, clip = listener
    before = await _snapshot(db)
    path = path.format(id=clip.id, token=clip.callback_token)
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body else None)
    if data is not None:
        data = io.BytesIO(data)  # streamed: aiohttp warns about large raw bodies
    async with aiohttp.ClientSession() as http:
        response = await http.request(method, url + path, data=data)
    assert response.status == status
    assert await _snapshot(db) == before


async def test_repeated_and_late_callbacks_are_no_ops(listener):
    url, db, clip = listener
    target = f"{url}/callbacks/{clip.id}/{clip.callback_token}"
    async with aiohttp.ClientSession() as http:
        assert (await http.post(target, json=RESULT)).status == 200
        await db.call(db.ledger.results.mark_done, clip.id)
        after_first = await _snapshot(db)
        changed = {**RESULT, "data": {"data": {"text": "Someone else entirely."}}}
        for _ in range(3):
            assert (await http.post(target, json=changed)).status == 200
    assert await _snapshot(db) == after_first


async def test_failed_analysis_callback_schedules_a_resubmission(listener):
    url, db, clip = listener
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{url}/callbacks/{clip.id}/{clip.callback_token}",
            json={"code": "5001", "msg": "model overloaded"},
        )
    assert response.status == 200
    stored = await db.call(db.ledger.clips.get, clip.id)
    assert stored.state is ClipState.RETRY_WAIT and "model overloaded" in stored.last_error


async def test_person_image_is_served_read_only(listener):
    url, _, _ = listener
    async with aiohttp.ClientSession() as http:
        response = await http.get(f"{url}/persons/person-token/0.jpg")
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert await response.read() == b"\xff\xd8\xff\xe0 a jpeg"
        assert (await http.put(f"{url}/persons/person-token/0.jpg", data=b"x")).status == 404
