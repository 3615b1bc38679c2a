"""Event clips in the ledger: the clips of an event, held (`in_event`) until the event is
over, then replaced in one transaction by the event clip made of them (`merged` into it,
kept in `event_members`), or given back to the queue one by one when they cannot be joined.
A crash at any point leaves either the held clips (joined again at the next start) or the
event clip with its members merged: never both, never neither."""

from __future__ import annotations

from collections.abc import Sequence

from edged.clip import Clip, ClipState, NewClip
from edged.ledger.clips import ClipRecords
from edged.ledger.connection import LedgerConnection
from edged.ledger.schema import LedgerError


class EventRecords:
    def __init__(self, db: LedgerConnection, clips: ClipRecords) -> None:
        self._db = db
        self._clips = clips

    def merge(self, member_ids: Sequence[int], event: NewClip) -> Clip:
        """Queue the event clip in place of its members (all still held)."""
        now = self._db.now()
        with self._db.transaction() as conn:
            marks = ",".join("?" for _ in member_ids)
            detail = "event of clips " + ", ".join(str(member) for member in member_ids)
            clip, created = self._clips.add_in(conn, event, detail=detail)
            if not created:
                raise LedgerError(f"event clip {event.path} is in the ledger already")
            cursor = conn.execute(
                f"UPDATE clips SET state=?, done_at=?, updated_at=? WHERE id IN ({marks})"
                " AND state=?",
                (ClipState.MERGED, now, now, *member_ids, ClipState.IN_EVENT),
            )
            if cursor.rowcount != len(member_ids):
                raise LedgerError("a clip of the event is no longer held for it")
            for member in member_ids:
                conn.execute(
                    "INSERT INTO event_members (member_id, event_id) VALUES (?, ?)",
                    (member, clip.id),
                )
                self._db.event(conn, member, ClipState.MERGED.value, f"into event clip {clip.id}")
        return clip

    def release(self, member_ids: Sequence[int], reason: str) -> int:
        """Held clips go to the queue on their own (an event of one clip, or clips that
        cannot be joined)."""
        count = 0
        with self._db.transaction() as conn:
            for member in member_ids:
                cursor = conn.execute(
                    "UPDATE clips SET state=?, updated_at=? WHERE id=? AND state=?",
                    (ClipState.QUEUED, self._db.now(), member, ClipState.IN_EVENT),
                )
                if cursor.rowcount:
                    count += 1
                    self._db.event(conn, member, ClipState.QUEUED.value, reason)
        return count

    def members(self, event_id: int) -> list[int]:
        rows = self._db.rows(
            "SELECT member_id FROM event_members WHERE event_id=? ORDER BY member_id", (event_id,)
        )
        return [row["member_id"] for row in rows]
