"""The clips in the ledger: a finished clip recorded once (queued), found again by its id,
its source key or its state, and the events of its trace.

Its upload transitions are in edged/ledger/uploads.py, its result in results.py.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from edged.clip import Clip, ClipState, NewClip
from edged.ledger.connection import LedgerConnection


class ClipRecords:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    # -- adding and reading clips ------------------------------------------------

    def add(self, new: NewClip) -> tuple[Clip, bool]:
        """Record a finished clip as queued (or, to be examined first, as examining); returns
        (clip, created).

        A clip whose `source_key` is already known is not added again: the
        existing record is returned with created=False.
        """
        with self._db.transaction() as conn:
            return self.add_in(conn, new)

    def add_in(
        self, conn: sqlite3.Connection, new: NewClip, *, detail: str | None = None
    ) -> tuple[Clip, bool]:
        """`add`, inside the caller's transaction (an event clip with its members)."""
        now = self._db.now()
        state = ClipState.EXAMINING if new.examine else ClipState.QUEUED
        if new.source_key is not None:
            row = conn.execute(
                "SELECT * FROM clips WHERE source_key=?", (new.source_key,)
            ).fetchone()
            if row is not None:
                return clip_from_row(row), False
        cursor = conn.execute(
            "INSERT INTO clips (camera, source, path, size, start_at, duration_s, source_key,"
            " fingerprint, state, found_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new.camera,
                new.source,
                str(new.path),
                new.size,
                new.start.isoformat() if new.start else None,
                new.duration_s,
                new.source_key,
                new.fingerprint,
                state,
                now,
                now,
            ),
        )
        clip_id = int(cursor.lastrowid or 0)
        self._db.event(conn, clip_id, state.value, detail)
        row = conn.execute("SELECT * FROM clips WHERE id=?", (clip_id,)).fetchone()
        return clip_from_row(row), True

    def get(self, clip_id: int) -> Clip | None:
        row = self._db.conn.execute("SELECT * FROM clips WHERE id=?", (clip_id,)).fetchone()
        return clip_from_row(row) if row else None

    def find_by_source_key(self, source_key: str) -> Clip | None:
        row = self._db.conn.execute(
            "SELECT * FROM clips WHERE source_key=?", (source_key,)
        ).fetchone()
        return clip_from_row(row) if row else None

    def fingerprints_with_prefix(self, prefix: str) -> dict[str, str | None]:
        """source_key → fingerprint of every clip whose key starts with `prefix` (uses the
        unique index on source_key: a range, not a scan)."""
        rows = self._db.conn.execute(
            "SELECT source_key, fingerprint FROM clips WHERE source_key >= ? AND source_key < ?",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return {row["source_key"]: row["fingerprint"] for row in rows}

    def in_state(self, *states: ClipState) -> list[Clip]:
        marks = ",".join("?" for _ in states)
        rows = self._db.conn.execute(
            f"SELECT * FROM clips WHERE state IN ({marks}) ORDER BY id", states
        ).fetchall()
        return [clip_from_row(row) for row in rows]

    def note(self, clip_id: int, kind: str, detail: str | None) -> None:
        """An event in the clip's trace that changes nothing else."""
        with self._db.transaction() as conn:
            self._db.event(conn, clip_id, kind, detail)


def clip_from_row(row: sqlite3.Row) -> Clip:
    return Clip(
        id=row["id"],
        camera=row["camera"],
        path=Path(row["path"]),
        size=row["size"],
        state=ClipState(row["state"]),
        attempts=row["attempts"],
        start=datetime.fromisoformat(row["start_at"]) if row["start_at"] else None,
        duration_s=row["duration_s"],
        callback_token=row["callback_token"],
        task_id=row["task_id"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        found_at=row["found_at"],
        fingerprint=row["fingerprint"],
        failures=row["failures"],
        exempt=bool(row["exempt"]),
        source=row["source"],
    )
