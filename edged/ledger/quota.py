"""What the storage quota asks of the ledger: edged's own clip files, and clips it drops."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edged.clip import Clip, ClipState
from edged.ledger.clips import clip_from_row
from edged.ledger.connection import LedgerConnection


class QuotaRecords:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def own_clips(
        self, key_prefix: str, states: Iterable[ClipState], *, done_before: float | None = None
    ) -> list[Clip]:
        """Clips whose source_key starts with `key_prefix` (files edged wrote itself), in
        `states` (and done before `done_before`, if given), whose file was not deleted yet;
        oldest first."""
        wanted = list(states)
        marks = ",".join("?" for _ in wanted)
        query = (
            "SELECT * FROM clips c WHERE c.source_key >= ? AND c.source_key < ?"
            f" AND c.state IN ({marks}) AND NOT EXISTS (SELECT 1 FROM events e"
            " WHERE e.clip_id = c.id AND e.kind = 'file_deleted')"
        )
        params: list[Any] = [key_prefix, key_prefix + "\U0010ffff", *wanted]
        if done_before is not None:
            query += " AND c.done_at <= ?"
            params.append(done_before)
        rows = self._db.conn.execute(query + " ORDER BY c.id", params).fetchall()
        return [clip_from_row(row) for row in rows]

    def merged_and_sent(self, key_prefix: str, done_before: float) -> list[Clip]:
        """Clips edged wrote itself, merged into an event clip that is done (before
        `done_before`), whose file was not deleted yet: the event clip holds their footage,
        and until it is done theirs is kept."""
        rows = self._db.rows(
            "SELECT c.* FROM clips c JOIN event_members m ON m.member_id = c.id"
            " JOIN clips e ON e.id = m.event_id"
            " WHERE c.source_key >= ? AND c.source_key < ? AND c.state = ? AND e.state = ?"
            " AND e.done_at <= ? AND NOT EXISTS (SELECT 1 FROM events x"
            " WHERE x.clip_id = c.id AND x.kind = 'file_deleted') ORDER BY c.id",
            (key_prefix, key_prefix + "\U0010ffff", ClipState.MERGED, ClipState.DONE, done_before),
        )
        return [clip_from_row(row) for row in rows]

    def mark_dropped(self, clip_id: int, reason: str, from_states: Iterable[ClipState]) -> bool:
        """A clip given up unsent (the storage quota); False if it moved on meanwhile."""
        wanted = list(from_states)
        marks = ",".join("?" for _ in wanted)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, last_error=?, next_attempt_at=NULL, updated_at=?"
                f" WHERE id=? AND state IN ({marks})",
                (ClipState.DROPPED, reason, self._db.now(), clip_id, *wanted),
            )
            if cursor.rowcount:
                self._db.event(conn, clip_id, ClipState.DROPPED.value, reason)
            return bool(cursor.rowcount)

    def mark_file_deleted(self, clip_id: int, detail: str) -> None:
        with self._db.transaction() as conn:
            self._db.event(conn, clip_id, "file_deleted", detail)
