"""The ledger's one SQLite connection: write transactions, the clip event log, reads.

Every repository of the ledger (clips, results, outbox, outages, quota, meta, verdicts,
reports; composed in edged/ledger/store.py) holds this one connection, so a transition that
touches several of them (a clip done with its alerts) is still one transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edged.ledger.schema import connect

LEDGER_FILE = "ledger.sqlite3"


class LedgerConnection:
    def __init__(self, storage_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = storage_dir / LEDGER_FILE
        self.now = clock
        self.conn = connect(self.path)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # A refused COMMIT (a full disk) may leave the transaction open: without the
            # rollback every later BEGIN would fail.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def event(self, conn: sqlite3.Connection, clip_id: int, kind: str, detail: str | None) -> None:
        """A line of the clip's trace, inside the caller's transaction."""
        conn.execute(
            "INSERT INTO events (clip_id, at, kind, detail) VALUES (?, ?, ?, ?)",
            (clip_id, self.now(), kind, detail),
        )

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """A read outside any transaction."""
        return self.conn.execute(sql, tuple(params)).fetchall()

    def row(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        found: sqlite3.Row | None = self.conn.execute(sql, tuple(params)).fetchone()
        return found

    def integrity_ok(self) -> bool:
        found = self.row("PRAGMA integrity_check")
        return bool(found and found[0] == "ok")
