"""A clip's way through the upload, in the ledger: every transition is one transaction.

Taken for upload (its attempt counted before the work runs, so a crash still counts, with a
fresh callback token), submitted, retried, given back untried, skipped by a guardrail,
expired or failed; `edged retry` puts it back in the queue.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from edged.clip import PENDING_UPLOAD_STATES, Clip, ClipState
from edged.ledger.clips import clip_from_row
from edged.ledger.connection import LedgerConnection
from edged.schedule import DayUsage

#: States an operator can put back in the queue with `edged retry`.
RETRYABLE_STATES = frozenset(
    {
        ClipState.FAILED,
        ClipState.EXPIRED,
        ClipState.SKIPPED_BUDGET,
        ClipState.SKIPPED_SCHEDULE,
        ClipState.SKIPPED_IDLE,
    }
)

#: `PENDING_UPLOAD_STATES` as SQL parameters, in a stable order, and their placeholders.
_PENDING_UPLOAD = tuple(sorted(PENDING_UPLOAD_STATES))
_PENDING_UPLOAD_IN = f"state IN ({', '.join('?' for _ in _PENDING_UPLOAD)})"


def new_callback_token() -> str:
    """128 bits of randomness, URL-safe: the per-upload secret of a callback URL."""
    return secrets.token_urlsafe(16)


class UploadRecords:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def resume(self, clip_id: int | None = None) -> int:
        """On start: clips that were mid-upload when the process died go back to queued.
        Their attempt still counts: a clip that crashes edged must not be retried forever."""
        query = "SELECT id FROM clips WHERE state=?"
        params: list[Any] = [ClipState.UPLOADING]
        if clip_id is not None:
            query += " AND id=?"
            params.append(clip_id)
        with self._db.transaction() as conn:
            ids = [row["id"] for row in conn.execute(query, params).fetchall()]
            for clip_id in ids:
                conn.execute(
                    "UPDATE clips SET state=?, updated_at=? WHERE id=?",
                    (ClipState.QUEUED, self._db.now(), clip_id),
                )
                self._db.event(conn, clip_id, "resumed", "was uploading when edged stopped")
        return len(ids)

    def take_for_upload(self, clip_id: int | None = None) -> Clip | None:
        """Claim the oldest clip due for upload: it becomes `uploading`, its attempt is counted
        before the work runs (so a crash still counts), and it gets a fresh callback token."""
        now = self._db.now()
        # Waiting for upload: a queued clip at once, one that waits for a retry when it is due.
        due = f"({_PENDING_UPLOAD_IN} AND (state=? OR COALESCE(next_attempt_at, 0) <= ?))"
        params: list[Any] = [*_PENDING_UPLOAD, ClipState.QUEUED, now]
        if clip_id is not None:
            due += " AND id=?"
            params.append(clip_id)
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT id FROM clips WHERE {due} ORDER BY id LIMIT 1", params
            ).fetchone()
            if row is None:
                return None
            token = new_callback_token()
            conn.execute(
                "UPDATE clips SET state=?, attempts=attempts+1, callback_token=?, task_id=NULL,"
                " upload_started_at=?, upload_finished_at=NULL, next_attempt_at=NULL,"
                " updated_at=? WHERE id=?",
                (ClipState.UPLOADING, token, now, now, row["id"]),
            )
            # Numbered by issue, not by the attempts counter (which an untried upload gives
            # back): every URL the service was ever given stays known.
            conn.execute(
                "INSERT INTO callback_tokens (clip_id, attempt, token, issued_at)"
                " SELECT ?, COALESCE(MAX(attempt), 0) + 1, ?, ? FROM callback_tokens"
                " WHERE clip_id=?",
                (row["id"], token, now, row["id"]),
            )
            self._db.event(conn, row["id"], "uploading", None)
            taken = conn.execute("SELECT * FROM clips WHERE id=?", (row["id"],)).fetchone()
        return clip_from_row(taken)

    def issued_tokens(self, clip_id: int) -> list[tuple[str, str | None]]:
        """(token, task id) of every upload attempt of the clip, latest first: the callback
        URLs the service was given for it."""
        rows = self._db.conn.execute(
            "SELECT token, task_id FROM callback_tokens WHERE clip_id=? ORDER BY attempt DESC",
            (clip_id,),
        ).fetchall()
        return [(row["token"], row["task_id"]) for row in rows]

    def next_due_at(self) -> float | None:
        """When the earliest waiting retry becomes due (None: nothing waits)."""
        row = self._db.conn.execute(
            "SELECT MIN(COALESCE(next_attempt_at, 0)) AS due FROM clips"
            f" WHERE {_PENDING_UPLOAD_IN}",
            _PENDING_UPLOAD,
        ).fetchone()
        return row["due"] if row and row["due"] is not None else None

    def mark_submitted(self, clip_id: int, task_id: str | None) -> None:
        """The API accepted the clip. A callback may already have landed: never move it back."""
        now = self._db.now()
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE clips SET task_id=COALESCE(task_id, ?), upload_finished_at=?, updated_at=?,"
                " failures=0,"
                " state=CASE WHEN state=? THEN ? ELSE state END WHERE id=?",
                (task_id, now, now, ClipState.UPLOADING, ClipState.SUBMITTED, clip_id),
            )
            conn.execute(
                "UPDATE callback_tokens SET task_id=COALESCE(task_id, ?)"
                " WHERE clip_id=? AND token=(SELECT callback_token FROM clips WHERE id=?)",
                (task_id, clip_id, clip_id),
            )
            self._db.event(conn, clip_id, "submitted", task_id)

    def mark_retry(
        self, clip_id: int, error: str, next_attempt_at: float, *, counted: bool = True
    ) -> None:
        """A transient failure. `counted=False` (the service was down or unreachable: not
        the clip's fault) gives the attempt back, so an outage never uses up max_attempts."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, last_error=?, next_attempt_at=?, updated_at=?,"
                " failures=failures+1, attempts=attempts-? WHERE id=? AND state=?",
                (
                    ClipState.RETRY_WAIT,
                    error,
                    next_attempt_at,
                    self._db.now(),
                    0 if counted else 1,
                    clip_id,
                    ClipState.UPLOADING,
                ),
            )
            if cursor.rowcount:
                self._db.event(conn, clip_id, ClipState.RETRY_WAIT.value, error)

    def retry_now(self, waiting_since: float, not_before: float = 0.0) -> int:
        """The service is back: clips that went to wait for it since `waiting_since` are due
        now (or at `not_before`, what it last asked with Retry-After), not when their own
        backoff (up to its cap) runs out. Returns how many."""
        now = self._db.now()
        due = max(now, not_before)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET next_attempt_at=?, failures=0, updated_at=?"
                " WHERE state=? AND updated_at>=? AND next_attempt_at>?",
                (due, now, ClipState.RETRY_WAIT, waiting_since, due),
            )
            return cursor.rowcount

    def mark_failed(self, clip_id: int, reason: str) -> None:
        self._move(clip_id, ClipState.FAILED, reason)

    def release(
        self,
        clip_id: int,
        reason: str,
        *,
        from_states: tuple[ClipState, ...] = (ClipState.UPLOADING,),
    ) -> None:
        """Give an upload back untried (e.g. the API key was refused): the attempt is not
        the clip's fault, so it is not counted. A submitted clip can be given back too (a
        callback that refuses for the account's sake, such as no credit)."""
        marks = ",".join("?" for _ in from_states)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, attempts=MAX(attempts-1, 0), last_error=?,"
                f" next_attempt_at=NULL, updated_at=? WHERE id=? AND state IN ({marks})",
                (ClipState.QUEUED, reason, self._db.now(), clip_id, *from_states),
            )
            if cursor.rowcount:
                self._db.event(conn, clip_id, "released", reason)

    def mark_skipped(self, clip_id: int, state: ClipState, reason: str) -> None:
        """Not uploaded by a cost guardrail; the attempt is given back."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, last_error=?, attempts=MAX(attempts-1, 0),"
                " updated_at=? WHERE id=? AND state=?",
                (state, reason, self._db.now(), clip_id, ClipState.UPLOADING),
            )
            if cursor.rowcount:
                self._db.event(conn, clip_id, state.value, reason)

    def usage_since(self, since: float, camera: str | None = None) -> DayUsage:
        """The clips, seconds of video and bytes accepted by the API since `since`."""
        query = (
            "SELECT COUNT(*) AS n, COALESCE(SUM(duration_s), 0) AS s, COALESCE(SUM(size), 0) AS b"
            " FROM clips WHERE upload_finished_at >= ?"
        )
        params: list[Any] = [since]
        if camera is not None:
            query += " AND camera=?"
            params.append(camera)
        row = self._db.conn.execute(query, params).fetchone()
        return DayUsage(int(row["n"]), float(row["s"]), int(row["b"]))

    def analysis_failed(self, clip_id: int, reason: str, retry_at: float | None) -> None:
        """The service reported that it could not analyse a submitted clip: resubmit at
        `retry_at`, or fail it when that is None (out of attempts)."""
        state = ClipState.FAILED if retry_at is None else ClipState.RETRY_WAIT
        self._move(
            clip_id,
            state,
            reason,
            next_attempt_at=retry_at,
            from_states=(ClipState.UPLOADING, ClipState.SUBMITTED),
        )

    def _move(
        self,
        clip_id: int,
        state: ClipState,
        error: str,
        *,
        next_attempt_at: float | None = None,
        from_states: tuple[ClipState, ...] = (ClipState.UPLOADING,),
    ) -> None:
        marks = ",".join("?" for _ in from_states)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE clips SET state=?, last_error=?, next_attempt_at=?, updated_at=?"
                f" WHERE id=? AND state IN ({marks})",
                (state, error, next_attempt_at, self._db.now(), clip_id, *from_states),
            )
            if cursor.rowcount:
                self._db.event(conn, clip_id, state.value, error)

    def expire_overdue(self, result_timeout_s: float, max_attempts: int) -> list[Clip]:
        """Submitted clips whose callback never came: expired (due now) or, out of attempts,
        failed."""
        now = self._db.now()
        expired: list[Clip] = []
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM clips WHERE state=? AND upload_finished_at < ?",
                (ClipState.SUBMITTED, now - result_timeout_s),
            ).fetchall()
            for row in rows:
                out_of_attempts = row["attempts"] >= max_attempts
                state = ClipState.FAILED if out_of_attempts else ClipState.EXPIRED
                reason = "no result callback within callback.result_timeout"
                if out_of_attempts:
                    reason += f" after {row['attempts']} attempts"
                conn.execute(
                    "UPDATE clips SET state=?, last_error=?, next_attempt_at=?, updated_at=?"
                    " WHERE id=?",
                    (state, reason, now, now, row["id"]),
                )
                self._db.event(conn, row["id"], state.value, reason)
                expired.append(
                    clip_from_row(
                        conn.execute("SELECT * FROM clips WHERE id=?", (row["id"],)).fetchone()
                    )
                )
        return expired

    # -- operator commands ------------------------------------------------------------

    def retry(self, clip_ids: Iterable[int] = (), *, every: Iterable[ClipState] = ()) -> list[int]:
        """Clips back to queued, with their attempts reset: the given ids when they are
        failed, expired or skipped, plus every clip in the `every` states. The cost
        guardrails let them through (an operator asked for them)."""
        with self._db.transaction() as conn:
            ids = []
            for state in every:
                rows = conn.execute("SELECT id FROM clips WHERE state=?", (state,)).fetchall()
                ids += [row["id"] for row in rows]
            for clip_id in clip_ids:
                row = conn.execute("SELECT state FROM clips WHERE id=?", (clip_id,)).fetchone()
                if row is not None and row["state"] in RETRYABLE_STATES and clip_id not in ids:
                    ids.append(clip_id)
            for clip_id in ids:
                conn.execute(
                    "UPDATE clips SET state=?, attempts=0, failures=0, next_attempt_at=NULL,"
                    " exempt=1, updated_at=? WHERE id=?",
                    (ClipState.QUEUED, self._db.now(), clip_id),
                )
                self._db.event(conn, clip_id, "retry", "requeued by operator")
        return ids
