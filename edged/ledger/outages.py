"""The record of camera outages: when each camera sent no footage, and why.

A reason is redacted before it is stored (edged/logs.py: URL userinfo, configured secrets):
it often quotes the camera's URL, and `edged status` shows it to whoever may read the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from edged.ledger.connection import LedgerConnection
from edged.logs import redact


@dataclass(frozen=True, slots=True)
class OutageRecord:
    """One outage as stored: `ended_at` is None while the camera is still away."""

    id: int
    camera: str
    started_at: float
    ended_at: float | None
    reason: str


class OutageRecords:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def open_outage(self, camera: str, reason: str) -> int:
        """A camera went away now; returns the outage id to close when it is back."""
        return self.open_outage_at(camera, self._db.now(), reason)

    def close_outage(self, outage_id: int) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE outages SET ended_at=? WHERE id=? AND ended_at IS NULL",
                (self._db.now(), outage_id),
            )

    def close_open_outages(self, camera: str, reason: str) -> None:
        """On start: outages left open by a stopped process end now, with a note."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE outages SET ended_at=?, reason=reason || ? WHERE camera=?"
                " AND ended_at IS NULL",
                (self._db.now(), f" ({redact(reason)})", camera),
            )

    def open_outage_at(self, camera: str, started_at: float, reason: str) -> int:
        """A camera went away at `started_at` (its last packet): the outage starts there,
        not when the loss was noticed."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO outages (camera, started_at, reason) VALUES (?, ?, ?)",
                (camera, started_at, redact(reason)),
            )
            return int(cursor.lastrowid or 0)

    def recent_outages(self, limit: int = 10) -> list[OutageRecord]:
        """The latest outages, open ones first, then by start (newest first)."""
        rows = self._db.rows(
            "SELECT id, camera, started_at, ended_at, reason FROM outages"
            " ORDER BY ended_at IS NOT NULL, started_at DESC LIMIT ?",
            (limit,),
        )
        return [
            OutageRecord(
                row["id"], row["camera"], row["started_at"], row["ended_at"], row["reason"]
            )
            for row in rows
        ]
