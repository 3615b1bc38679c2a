"""The `ledger` fixture (a ledger in tmp_path/state, as edged's storage.dir) and the queries the
tests make on a ledger: clips queued as a source would, states, the alert outbox, raw rows.
The queries read a Ledger of the test's, or the ledger of an `edged run` subprocess (an
`EdgedProcess`, through its read-only connection).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from edged.alerts.model import alert_id_for
from edged.clip import NewClip
from edged.ledger.store import Ledger

if TYPE_CHECKING:
    from tests.support.edged_process import EdgedProcess

CAMERA = "porch"


async def queue_clip(ledger: Ledger, path: Path) -> int:
    """Put a finished clip in the ledger, as a source would (another connection: the daemon
    finds it on its next poll)."""
    size = (await asyncio.to_thread(path.stat)).st_size
    new = NewClip(CAMERA, path, size, start=None, duration_s=1.0, source_key=f"test:{path.name}")
    clip, created = await asyncio.to_thread(ledger.clips.add, new)
    assert created
    return clip.id


async def query(ledger: Ledger | EdgedProcess, sql: str, *params: object) -> list[dict[str, Any]]:
    if not isinstance(ledger, Ledger):
        return await ledger.rows(sql, *params)
    rows = await asyncio.to_thread(ledger.db.rows, sql, params)
    return [dict(row) for row in rows]


async def clip_states(ledger: Ledger | EdgedProcess) -> dict[int, str]:
    return {row["id"]: row["state"] for row in await query(ledger, "SELECT id, state FROM clips")}


async def outbox(ledger: Ledger | EdgedProcess) -> list[dict[str, Any]]:
    return await query(
        ledger,
        "SELECT alert_id, sink, clip_id, person, state, attempts FROM alerts"
        " ORDER BY clip_id, person, sink",
    )


def reached(ledger: Ledger | EdgedProcess, wanted: dict[int, str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        states = await clip_states(ledger)
        return all(states.get(clip_id) == state for clip_id, state in wanted.items())

    return check


def all_sent(ledger: Ledger | EdgedProcess, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await outbox(ledger)
        return len(rows) == count and all(row["state"] == "sent" for row in rows)

    return check


async def expected_ids(ledger: Ledger | EdgedProcess, pairs: list[tuple[int, str]]) -> set[str]:
    if isinstance(ledger, Ledger):
        install_id = await asyncio.to_thread(ledger.meta.get, "install_id")
    else:
        found = await ledger.rows("SELECT value FROM meta WHERE key=?", "install_id")
        install_id = found[0]["value"] if found else None
    assert install_id is not None
    return {alert_id_for(install_id, clip_id, person) for clip_id, person in pairs}


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    opened = await asyncio.to_thread(Ledger, tmp_path / "state")
    yield opened
    await asyncio.to_thread(opened.close)


def rows(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    """Blocking: a query on its own connection (a reader never blocks edged in WAL mode)."""
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
