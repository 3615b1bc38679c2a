"""Analysis results in the ledger: stored once per clip, then the clip is done (with its
alerts, in the same transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edged.clip import AWAITING_RESULT_STATES, ClipState
from edged.ledger.connection import LedgerConnection
from edged.ledger.outbox import NewAlert, Outbox
from edged.ledger.reports import CLIP_STEPS
from edged.ledger.schema import LedgerError
from edged.ledger.verdict_stats import VerdictStats


@dataclass(frozen=True, slots=True)
class Tokens:
    """What one analysis used, as the service reports it; None where it did not say."""

    input: int | None = None
    output: int | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class ClipTimings:
    """When a clip's last attempt passed each step: one field per column of
    `reports.CLIP_STEPS`, in its order (`timings` selects those columns)."""

    found_at: float
    upload_started_at: float | None
    upload_finished_at: float | None
    callback_at: float | None
    done_at: float | None

    def at(self, column: str) -> float | None:
        moment: float | None = getattr(self, column)
        return moment


_STEP_COLUMNS = ", ".join(column for column, _ in CLIP_STEPS)


@dataclass(frozen=True, slots=True)
class StoredResult:
    clip_id: int
    task_id: str | None
    text: str
    tokens_input: int | None
    tokens_output: int | None
    tokens_total: int | None
    received_at: float


class ResultRecords:
    def __init__(self, db: LedgerConnection, outbox: Outbox, verdicts: VerdictStats) -> None:
        self._db = db
        self._outbox = outbox
        self._verdicts = verdicts

    def result(self, clip_id: int) -> StoredResult | None:
        row = self._db.conn.execute("SELECT * FROM results WHERE clip_id=?", (clip_id,)).fetchone()
        if row is None:
            return None
        return StoredResult(
            clip_id=row["clip_id"],
            task_id=row["task_id"],
            text=row["text"],
            tokens_input=row["tokens_input"],
            tokens_output=row["tokens_output"],
            tokens_total=row["tokens_total"],
            received_at=row["received_at"],
        )

    def timings(self, clip_id: int) -> ClipTimings | None:
        row = self._db.row(f"SELECT {_STEP_COLUMNS} FROM clips WHERE id=?", (clip_id,))
        return ClipTimings(**dict(row)) if row else None

    def record_result(
        self,
        clip_id: int,
        *,
        task_id: str | None,
        text: str,
        tokens: Tokens,
        raw: str,
    ) -> bool:
        """Store a clip's analysis and move it to `analyzed`; False if it already had one
        (a repeated or late callback changes nothing) or no longer waits for one."""
        now = self._db.now()
        with self._db.transaction() as conn:
            row = conn.execute("SELECT state FROM clips WHERE id=?", (clip_id,)).fetchone()
            if row is None:
                raise LedgerError(f"clip {clip_id} is not in the ledger")
            if row["state"] not in AWAITING_RESULT_STATES:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO results (clip_id, task_id, text, tokens_input,"
                " tokens_output, tokens_total, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    clip_id,
                    task_id,
                    text,
                    tokens.input,
                    tokens.output,
                    tokens.total,
                    raw,
                    now,
                ),
            )
            conn.execute(
                "UPDATE clips SET state=?, task_id=COALESCE(?, task_id), callback_at=?,"
                " last_error=NULL, updated_at=? WHERE id=?",
                (ClipState.ANALYZED, task_id, now, now, clip_id),
            )
            self._db.event(conn, clip_id, "analyzed", task_id)
        return True

    def mark_done(
        self,
        clip_id: int,
        *,
        alerts: Sequence[NewAlert] = (),
        has_verdict: bool | None = None,
        detail: str | None = None,
    ) -> None:
        """analyzed → done, in one transaction with its alerts queued and, when its result was
        read (`has_verdict` not None), the verdict counters; `detail` (how the result was
        read, as JSON) goes with the `done` event."""
        now = self._db.now()
        with self._db.transaction() as conn:
            self._outbox.add_in(conn, alerts, now)
            if has_verdict is not None:
                self._verdicts.count_in(conn, has_verdict)
            conn.execute(
                "UPDATE clips SET state=?, done_at=?, updated_at=? WHERE id=? AND state=?",
                (ClipState.DONE, now, now, clip_id, ClipState.ANALYZED),
            )
            self._db.event(conn, clip_id, "done", detail)
