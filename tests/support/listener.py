"""The `listener` fixture: a real callback listener on a clip waiting for its result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edged.clip import Clip, NewClip
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.results.callback_server import CallbackServer
from edged.results.listener import CallbackApp
from edged.upload.persons import build_directory

RESULT = {
    "code": 0,
    "message": "success",
    "task_id": "task-1",
    "data": {"data": {"text": "Alice walks in."}, "token": {"total": 9}},
}


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[tuple[str, AsyncLedger, Clip]]:
    image = tmp_path / "alice.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    persons = build_directory((("Alice", None, image),), "http://unused", "person-token")
    db = AsyncLedger(Ledger(tmp_path / "state"))
    await db.call(db.ledger.clips.add, NewClip("cam", tmp_path / "c.mp4", 10))
    clip = await db.call(db.ledger.uploads.take_for_upload)
    await db.call(db.ledger.uploads.mark_submitted, clip.id, "task-1")
    server = CallbackServer(CallbackApp(db, persons), "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.port}", db, clip
    await db.aclose()
