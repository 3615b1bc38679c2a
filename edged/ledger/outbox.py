"""The alert outbox in the ledger: one row per (alert, sink), delivered at least once.

`NewAlert` is a row to add, `Alert` a row read back: its body is parsed once, when first read
(`Alert.body`), and `payload_json` keeps the stored text, the bytes a webhook signs. All of it is
blocking and runs on the ledger's thread; the rules on what is sent (cooldown, max_per_hour)
are the alert policy's, which reads the sent alerts from here. States: pending → sent,
or suppressed (cooldown, max_per_hour), or failed (undeliverable past alerts.retry_max_age).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from edged.alert_body import AlertBody
from edged.ledger.connection import LedgerConnection

PENDING, SENT, SUPPRESSED, FAILED = "pending", "sent", "suppressed", "failed"


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    sink: str
    clip_id: int
    camera: str
    person: str
    confidence: float
    event_at: float  # when the person was seen (clip start + moment), epoch seconds
    payload_json: str  # the body every sink sends, fixed when the alert is created
    attempts: int
    created_at: float
    # The body parsed, or why the stored text is not one: read on first use (in delivery, on
    # the loop), not on the ledger's thread for every row read back.
    _body: AlertBody | ValueError | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def body(self) -> AlertBody:
        """The stored body, parsed once on first use; raises ValueError when the stored text
        is not one."""
        body = self._body
        if body is None:
            try:
                body = AlertBody.from_json(self.payload_json)
            except ValueError as exc:  # a row no edged wrote: its deliveries fail, one by one
                body = exc
            object.__setattr__(self, "_body", body)
        if isinstance(body, ValueError):
            raise body
        return body


@dataclass(frozen=True, slots=True)
class NewAlert:
    alert_id: str
    sink: str
    clip_id: int
    camera: str
    person: str
    confidence: float
    event_at: float
    payload_json: str


class Outbox:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def add(self, alerts: Iterable[NewAlert], now: float) -> None:
        with self._db.transaction() as conn:
            self.add_in(conn, alerts, now)

    def add_in(self, conn: sqlite3.Connection, alerts: Iterable[NewAlert], now: float) -> None:
        """Inside the caller's transaction (the one that marks the clip done): all or nothing."""
        conn.executemany(
            "INSERT OR IGNORE INTO alerts (alert_id, sink, clip_id, camera, person, confidence,"
            " event_at, payload, state, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    a.alert_id,
                    a.sink,
                    a.clip_id,
                    a.camera,
                    a.person,
                    a.confidence,
                    a.event_at,
                    a.payload_json,
                    PENDING,
                    now,
                    now,
                )
                for a in alerts
            ],
        )

    def next_due(self, sink: str, now: float) -> Alert | None:
        rows = self._db.rows(
            "SELECT * FROM alerts WHERE sink=? AND state=? AND next_attempt_at <= ?"
            " ORDER BY event_at, alert_id LIMIT 1",
            (sink, PENDING, now),
        )
        return _alert(rows[0]) if rows else None

    def next_wakeup(self, sink: str) -> float | None:
        rows = self._db.rows(
            "SELECT MIN(next_attempt_at) AS due FROM alerts WHERE sink=? AND state=?",
            (sink, PENDING),
        )
        return rows[0]["due"] if rows and rows[0]["due"] is not None else None

    def in_cooldown(self, alert: Alert, cooldown_s: float) -> bool:
        """Was the same person on the same camera already sent to this sink for a sighting within
        the cooldown of this one? Counted from alerts actually sent, by the time of the sighting,
        so a backlog drained after an outage is judged as it happened; the window looks both ways
        because a retried alert can be delivered after a later one."""
        if cooldown_s <= 0:
            return False
        rows = self._db.rows(
            "SELECT 1 FROM alerts WHERE sink=? AND camera=? AND person=? AND state=?"
            " AND event_at > ? AND event_at < ? AND alert_id != ? LIMIT 1",
            (
                alert.sink,
                alert.camera,
                alert.person,
                SENT,
                alert.event_at - cooldown_s,
                alert.event_at + cooldown_s,
                alert.alert_id,
            ),
        )
        return bool(rows)

    def sent_around(self, alert: Alert, window_s: float) -> list[float]:
        """When the other alerts of its person and camera sent to this sink were seen, within
        window_s either side of this one's sighting."""
        rows = self._db.rows(
            "SELECT event_at FROM alerts WHERE sink=? AND camera=? AND person=? AND state=?"
            " AND event_at > ? AND event_at < ? AND alert_id != ?",
            (
                alert.sink,
                alert.camera,
                alert.person,
                SENT,
                alert.event_at - window_s,
                alert.event_at + window_s,
                alert.alert_id,
            ),
        )
        return [row["event_at"] for row in rows]

    def mark(
        self,
        alert: Alert,
        state: str,
        now: float,
        *,
        error: str | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE alerts SET state=?, attempts=attempts+?, last_error=?,"
                " next_attempt_at=COALESCE(?, next_attempt_at), sent_at=CASE WHEN ?='sent' THEN ?"
                " ELSE sent_at END WHERE alert_id=? AND sink=? AND state=?",
                (
                    state,
                    0 if state == SUPPRESSED else 1,
                    error,
                    next_attempt_at,
                    state,
                    now,
                    alert.alert_id,
                    alert.sink,
                    PENDING,
                ),
            )

    def counts_by_state(self) -> dict[str, int]:
        rows = self._db.rows("SELECT state, COUNT(*) AS n FROM alerts GROUP BY state")
        return {row["state"]: row["n"] for row in rows}


def _alert(row: sqlite3.Row) -> Alert:
    return Alert(
        alert_id=row["alert_id"],
        sink=row["sink"],
        clip_id=row["clip_id"],
        camera=row["camera"],
        person=row["person"],
        confidence=row["confidence"],
        event_at=row["event_at"],
        payload_json=row["payload"],
        attempts=row["attempts"],
        created_at=row["created_at"],
    )
