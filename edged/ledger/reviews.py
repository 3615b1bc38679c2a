"""Frigate's review items as edged heard them (`upload: frigate`): kept in the ledger, so a
restart still knows the reviews a waiting recording is judged by."""

from __future__ import annotations

import json
from dataclasses import dataclass

from edged.ledger.connection import LedgerConnection


@dataclass(frozen=True, slots=True)
class Review:
    id: str
    camera: str
    start_at: float
    end_at: float | None  # None: still open
    severity: str
    objects: tuple[str, ...]


class ReviewRecords:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def upsert(self, review: Review) -> None:
        """A review as its latest message has it; an end once heard is kept."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO reviews (id, camera, start_at, end_at, severity, objects,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " camera=excluded.camera, start_at=excluded.start_at,"
                " end_at=COALESCE(excluded.end_at, reviews.end_at), severity=excluded.severity,"
                " objects=excluded.objects, updated_at=excluded.updated_at",
                (
                    review.id,
                    review.camera,
                    review.start_at,
                    review.end_at,
                    review.severity,
                    json.dumps(list(review.objects)),
                    self._db.now(),
                ),
            )

    def around(self, camera: str, start: float, end: float) -> list[Review]:
        """The camera's reviews that overlap start..end (an open one reaches to now)."""
        rows = self._db.rows(
            "SELECT * FROM reviews WHERE camera=? AND start_at < ?"
            " AND (end_at IS NULL OR end_at > ?) ORDER BY start_at",
            (camera, end, start),
        )
        return [
            Review(
                row["id"],
                row["camera"],
                row["start_at"],
                row["end_at"],
                row["severity"],
                tuple(str(label) for label in json.loads(row["objects"])),
            )
            for row in rows
        ]

    def prune(self, ended_before: float) -> int:
        """Reviews that ended long ago judge no recording any more."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM reviews WHERE end_at < ?", (ended_before,)).rowcount
