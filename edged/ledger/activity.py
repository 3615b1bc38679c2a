"""What the activity gate found in each clip of a camera with `upload: activity`, and the move
it makes: examining → queued (activity, or a clip it could not read: never skipped unseen) or
skipped_idle (kept, listed, sent after `edged retry --skipped`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from edged.clip import ClipState
from edged.ledger.connection import LedgerConnection


@dataclass(frozen=True, slots=True)
class ClipActivityRecord:
    """A clip's activity as the ledger keeps it."""

    seconds: float  # of video examined
    active: tuple[int, ...]  # the active seconds, from the clip's start
    peak_score: float
    peak_area: float
    samples: int  # frames compared

    @property
    def active_seconds(self) -> int:
        return len(self.active)


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A clip of the same camera found about the same time, as the rolls need it."""

    clip_id: int
    start: datetime | None
    duration_s: float | None
    state: ClipState
    active: tuple[int, ...] | None  # None: not examined (yet)


class ActivityRecords:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def examined(
        self,
        clip_id: int,
        found: ClipActivityRecord,
        *,
        rolled: str | None = None,
        sent_to: ClipState = ClipState.QUEUED,
        takes: Sequence[int] = (),
    ) -> ClipState | None:
        """Store what was found and move the clip on: queued with activity (or within a
        neighbour's roll: `rolled` says which), skipped_idle without; and, in the same
        transaction, the idle neighbours its rolls `takes` back (so a crash in between
        cannot lose them). Returns the new state; None when the clip was no longer
        examining."""
        sent = bool(found.active) or rolled is not None
        state = sent_to if sent else ClipState.SKIPPED_IDLE
        now = self._db.now()
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, last_error=?, updated_at=? WHERE id=? AND state=?",
                (
                    state,
                    None if sent else "no activity",
                    now,
                    clip_id,
                    ClipState.EXAMINING,
                ),
            )
            if not cursor.rowcount:
                return None
            conn.execute(
                "INSERT OR REPLACE INTO activity (clip_id, seconds, active, active_s, peak_score,"
                " peak_area, samples, examined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    clip_id,
                    found.seconds,
                    json.dumps(list(found.active)),
                    len(found.active),
                    found.peak_score,
                    found.peak_area,
                    found.samples,
                    now,
                ),
            )
            detail = f"{len(found.active)} active seconds of {found.seconds:.0f}"
            if rolled is not None and not found.active:
                detail += f"; {rolled}"
            self._db.event(conn, clip_id, state.value, detail)
            for other in takes:
                self._take_back(conn, other, f"within the rolls of clip {clip_id}", sent_to)
        return state

    def neighbours(self, camera: str, found_at: float, within_s: float) -> list[Neighbour]:
        """The camera's clips found within `within_s` of `found_at` (indexed by camera and
        found_at), with what the gate found in them."""
        rows = self._db.rows(
            "SELECT c.id, c.start_at, c.duration_s, c.state, a.active FROM clips c"
            " LEFT JOIN activity a ON a.clip_id = c.id"
            " WHERE c.camera=? AND c.found_at BETWEEN ? AND ? ORDER BY c.id",
            (camera, found_at - within_s, found_at + within_s),
        )
        return [
            Neighbour(
                row["id"],
                datetime.fromisoformat(row["start_at"]) if row["start_at"] else None,
                row["duration_s"],
                ClipState(row["state"]),
                None if row["active"] is None else tuple(json.loads(row["active"])),
            )
            for row in rows
        ]

    def rolled_in(
        self, clip_id: int, reason: str, *, sent_to: ClipState = ClipState.QUEUED
    ) -> bool:
        """An idle clip next to activity goes after all (pre_roll, post_roll): skipped_idle
        → queued; False when it had moved on."""
        with self._db.transaction() as conn:
            return self._take_back(conn, clip_id, reason, sent_to)

    def _take_back(
        self, conn: sqlite3.Connection, clip_id: int, reason: str, sent_to: ClipState
    ) -> bool:
        cursor = conn.execute(
            "UPDATE clips SET state=?, last_error=NULL, updated_at=? WHERE id=? AND state=?",
            (sent_to, self._db.now(), clip_id, ClipState.SKIPPED_IDLE),
        )
        if cursor.rowcount:
            self._db.event(conn, clip_id, sent_to.value, reason)
        return bool(cursor.rowcount)

    def judged(
        self, clip_id: int, send: bool, reason: str, *, sent_to: ClipState = ClipState.QUEUED
    ) -> bool:
        """Decided without an examination (Frigate's reviews): examining → queued or
        skipped_idle, with the reason; False when it had moved on."""
        state = sent_to if send else ClipState.SKIPPED_IDLE
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, last_error=?, updated_at=? WHERE id=? AND state=?",
                (state, None if send else reason, self._db.now(), clip_id, ClipState.EXAMINING),
            )
            if cursor.rowcount:
                self._db.event(conn, clip_id, state.value, reason)
            return bool(cursor.rowcount)

    def unreadable(self, clip_id: int, reason: str) -> bool:
        """The gate could not read the clip: it is queued all the same (the upload's own
        checks judge the file), so footage is never skipped without being seen."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, updated_at=? WHERE id=? AND state=?",
                (ClipState.QUEUED, self._db.now(), clip_id, ClipState.EXAMINING),
            )
            if cursor.rowcount:
                self._db.event(conn, clip_id, "queued", f"not examined: {reason}")
            return bool(cursor.rowcount)

    def of(self, clip_id: int) -> ClipActivityRecord | None:
        row = self._db.row("SELECT * FROM activity WHERE clip_id=?", (clip_id,))
        if row is None:
            return None
        return ClipActivityRecord(
            seconds=row["seconds"],
            active=tuple(int(second) for second in json.loads(row["active"])),
            peak_score=row["peak_score"],
            peak_area=row["peak_area"],
            samples=row["samples"],
        )
