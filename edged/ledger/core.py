"""The ledger's connection: transactions, the event log, meta values, row conversion.

The clip ledger (edged/ledger/clips.py) is built on this, with the outage record
(outages.py), the storage quota's queries (quota.py) and the analysis results (results.py)
alongside.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from edged.clip import Clip, ClipState
from edged.ledger.schema import connect

LEDGER_FILE = "ledger.sqlite3"


class LedgerCore:
    def __init__(self, storage_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = storage_dir / LEDGER_FILE
        self._clock = clock
        self._conn = connect(self.path)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT); for the outbox and reports."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            # A refused COMMIT (a full disk) may leave the transaction open: without the
            # rollback every later BEGIN would fail.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _event(self, conn: sqlite3.Connection, clip_id: int, kind: str, detail: str | None) -> None:
        conn.execute(
            "INSERT INTO events (clip_id, at, kind, detail) VALUES (?, ?, ?, ?)",
            (clip_id, self._clock(), kind, detail),
        )

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def note(self, clip_id: int, kind: str, detail: str | None) -> None:
        """An event in the clip's trace that changes nothing else."""
        with self.transaction() as conn:
            self._event(conn, clip_id, kind, detail)

    def set_pause(self, reason: str | None, message: str | None, at: float) -> None:
        """Uploads paused (reason, what the service said, since when), or resumed (None): kept
        in the ledger, so `edged status`, /healthz and /metrics tell the same story."""
        with self.transaction() as conn:
            if reason is None:
                conn.execute("DELETE FROM meta WHERE key='uploads_paused'")
            else:
                value = json.dumps({"reason": reason, "message": message, "since": at})
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('uploads_paused', ?)",
                    (value,),
                )

    def pause(self) -> dict[str, Any] | None:
        """{reason, message, since} while uploads are paused, else None."""
        value = self.get_meta("uploads_paused")
        if value is None:
            return None
        try:
            found = json.loads(value)
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    def meta_once(self, key: str, make: Callable[[], str]) -> str:
        """The meta value of `key`; the first time, `make()`'s, stored. Two callers racing
        for it get the same value: the one committed first."""
        existing = self.get_meta(key)
        if existing is not None:
            return existing
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, make()))
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row["value"])

    def install_id(self) -> str:
        """A random id of this ledger, made once: keeps alert ids unique across boxes."""
        return self.meta_once("install_id", lambda: secrets.token_hex(8))

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row["value"]) if row else None

    def integrity_ok(self) -> bool:
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return bool(row and row[0] == "ok")

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Read-only queries for reports (status, metrics)."""
        return self._conn.execute(sql, tuple(params)).fetchall()


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
