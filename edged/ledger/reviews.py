"""Frigate's review items as edged heard them (`upload: frigate`): kept in the ledger, so a
restart still knows the reviews a waiting recording is judged by."""

from __future__ import annotations

import json
import sqlite3
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
        """A review as its messages have it. A later message of the same id may add to it
        (an end, objects, the alert severity) but never take away: its camera and start
        stay, its objects are the union, an alert stays an alert, and of two ends the later
        counts (an ended review is not opened again). A forged message cannot turn a
        person's review into nothing."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO reviews (id, camera, start_at, end_at, severity, objects,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " end_at=CASE WHEN reviews.end_at IS NULL THEN excluded.end_at"
                " WHEN excluded.end_at IS NULL THEN reviews.end_at"
                " ELSE MAX(reviews.end_at, excluded.end_at) END,"
                " severity=CASE WHEN 'alert' IN (reviews.severity, excluded.severity)"
                " THEN 'alert' ELSE reviews.severity END,"
                " objects=(SELECT json_group_array(value) FROM (SELECT value FROM"
                " json_each(reviews.objects) UNION SELECT value FROM json_each(excluded.objects))),"
                " updated_at=excluded.updated_at",
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
        return [_review(row) for row in rows]

    def get(self, review_id: str) -> Review | None:
        row = self._db.row("SELECT * FROM reviews WHERE id=?", (review_id,))
        return _review(row) if row is not None else None

    def prune(self, before: float) -> int:
        """Reviews that ended, or began if they never ended, before `before` judge no
        recording any more."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM reviews WHERE end_at < ? OR (end_at IS NULL AND start_at < ?)",
                (before, before),
            )
            return cursor.rowcount


def _review(row: sqlite3.Row) -> Review:
    return Review(
        row["id"],
        row["camera"],
        row["start_at"],
        row["end_at"],
        row["severity"],
        tuple(str(label) for label in json.loads(row["objects"])),
    )
