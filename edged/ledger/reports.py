"""Read-only reports on the ledger, as values: what /metrics, /healthz, `edged status` (and its
`--clip` trace), the daemon's shutdown and the MQTT camera status read.

Each has one definition here: a *pending* clip is one edged still has work for
(`PENDING_STATES`: examining, in an event, queued, retrying, expired, uploading, submitted
or analyzed), *today* is the UTC day (`edged.schedule.utc_day_start`, the service's billing
day), and a clip's steps are the five timestamps of `CLIP_STEPS`. All of them are
blocking: the daemon calls them on the ledger's thread, `edged status` on a connection of
its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from edged.clip import PENDING_UPLOAD_STATES, ClipState
from edged.ledger.connection import LedgerConnection
from edged.schedule import utc_day_start

#: Clips edged still has work for: the oldest of them is "the oldest pending clip".
PENDING_STATES = (
    ClipState.EXAMINING,
    ClipState.IN_EVENT,
    *sorted(PENDING_UPLOAD_STATES),
    ClipState.UPLOADING,
    ClipState.SUBMITTED,
    ClipState.ANALYZED,
)

#: A clip's steps in order: (column of the clips table, what happened then).
CLIP_STEPS = (
    ("found_at", "found (queued)"),
    ("upload_started_at", "upload started"),
    ("upload_finished_at", "upload done"),
    ("callback_at", "result received"),
    ("done_at", "done"),
)

#: States whose clips keep their last error for `edged status`.
_ERROR_STATES = (
    ClipState.FAILED,
    ClipState.RETRY_WAIT,
    ClipState.EXPIRED,
    ClipState.SKIPPED_BUDGET,
    ClipState.SKIPPED_SCHEDULE,
    ClipState.SKIPPED_IDLE,
)


@dataclass(frozen=True, slots=True)
class UploadTotals:
    bytes: int  # of clips whose upload finished
    accepted: int  # uploads the API accepted
    duplicates: int  # acceptances of a clip beyond its first
    interrupted: int  # uploads cut off by a crash or a stop


@dataclass(frozen=True, slots=True)
class OutageTotal:
    seconds: float  # all outages of the camera, the open one counted up to now
    down: bool  # an outage is open


@dataclass(frozen=True, slots=True)
class TokenTotals:
    total: int
    today: int  # since the start of the UTC day


@dataclass(frozen=True, slots=True)
class Footage:
    """Seconds of video in a day (UTC): found, and accepted by the service."""

    recorded_s: float  # of clips found that day (an event clip's footage counted once)
    uploaded_s: float  # of clips whose upload was accepted that day
    skipped_idle: int  # clips found that day kept back for no activity
    events: int = 0  # event clips made that day
    event_tokens: int = 0  # the tokens their analyses used

    @property
    def tokens_per_event(self) -> float | None:
        return self.event_tokens / self.events if self.events else None

    @property
    def uploaded_share(self) -> float | None:
        return self.uploaded_s / self.recorded_s if self.recorded_s > 0 else None


@dataclass(frozen=True, slots=True)
class ClipError:
    clip_id: int
    camera: str
    error: str


@dataclass(frozen=True, slots=True)
class ClipAlert:
    person: str
    sink: str
    state: str
    created_at: float
    sent_at: float | None


@dataclass(frozen=True, slots=True)
class ClipEvent:
    at: float
    kind: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class CameraActivity:
    camera: str
    last_found_at: float
    last_clip_id: int


@dataclass(frozen=True, slots=True)
class CameraOutages:
    camera: str
    down: bool  # an outage is open
    last_ended_at: float | None


def _marks(values: tuple[object, ...]) -> str:
    return ",".join("?" for _ in values)


class Reports:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def clip_counts(self) -> dict[tuple[str, str], int]:
        """(camera, state) → clips."""
        rows = self._db.rows("SELECT camera, state, COUNT(*) AS n FROM clips GROUP BY 1, 2")
        return {(row["camera"], row["state"]): row["n"] for row in rows}

    def last_clip_at(self) -> dict[str, float]:
        """Camera → when its latest clip was found."""
        rows = self._db.rows("SELECT camera, MAX(found_at) AS t FROM clips GROUP BY camera")
        return {row["camera"]: row["t"] for row in rows}

    def oldest_pending_at(self) -> float | None:
        """When the oldest pending clip was found; None when no clip is pending."""
        rows = self._db.rows(
            f"SELECT MIN(found_at) AS t FROM clips WHERE state IN ({_marks(PENDING_STATES)})",
            PENDING_STATES,
        )
        return rows[0]["t"] if rows else None

    def upload_totals(self) -> UploadTotals:
        uploaded = self._db.rows(
            "SELECT COALESCE(SUM(size), 0) AS b FROM clips WHERE upload_finished_at IS NOT NULL"
        )
        accepted = duplicates = 0
        for row in self._db.rows(
            "SELECT COUNT(*) AS n FROM events WHERE kind='submitted' GROUP BY clip_id"
        ):
            accepted += row["n"]
            duplicates += row["n"] - 1
        # Uploads cut off by a crash or a stop: the only way the API can hold a clip that edged
        # does not know it sent, so the next upload of that clip may be a duplicate it never sees.
        interrupted = self._db.rows(
            "SELECT COUNT(*) AS n FROM events WHERE kind='resumed'"
            " OR (kind='released' AND detail='interrupted')"
        )
        return UploadTotals(int(uploaded[0]["b"]), accepted, duplicates, int(interrupted[0]["n"]))

    def failure_details(self) -> list[str]:
        """The detail of every retry and failure, oldest first (the API's codes are in them)."""
        rows = self._db.rows(
            "SELECT detail FROM events WHERE kind IN ('retry_wait', 'failed')"
            " AND detail IS NOT NULL"
        )
        return [row["detail"] for row in rows]

    def alert_counts(self) -> dict[tuple[str, str], int]:
        """(sink, state) → alerts."""
        rows = self._db.rows("SELECT sink, state, COUNT(*) AS n FROM alerts GROUP BY 1, 2")
        return {(row["sink"], row["state"]): row["n"] for row in rows}

    def outage_totals(self, now: float) -> dict[str, OutageTotal]:
        rows = self._db.rows(
            "SELECT camera, SUM(COALESCE(ended_at, ?) - started_at) AS s,"
            " SUM(ended_at IS NULL) AS open FROM outages GROUP BY camera",
            (now,),
        )
        return {row["camera"]: OutageTotal(float(row["s"] or 0), bool(row["open"])) for row in rows}

    def footage_today(self, now: float) -> Footage:
        day = utc_day_start(now)
        return self.footage_between(day, day + 86400.0)

    def footage_between(self, start: float, end: float) -> Footage:
        day = (start, end)  # each `?` pair below
        found = "(found_at >= ? AND found_at < ?)"
        event = "id IN (SELECT event_id FROM event_members)"
        row = self._db.row(
            f"SELECT TOTAL(CASE WHEN {found} AND NOT {event} THEN duration_s END) AS recorded,"
            " TOTAL(CASE WHEN upload_finished_at >= ? AND upload_finished_at < ?"
            " THEN duration_s END) AS uploaded,"
            f" COUNT(CASE WHEN {found} AND state=? THEN 1 END) AS idle,"
            f" COUNT(CASE WHEN {found} AND {event} THEN 1 END) AS events FROM clips"
            f" WHERE {found} OR (upload_finished_at >= ? AND upload_finished_at < ?)",
            (*day, *day, *day, ClipState.SKIPPED_IDLE, *day, *day, *day),
        )
        tokens = self._db.row(
            # TOTAL, not SUM: a sum of hostile counts must not overflow.
            "SELECT TOTAL(r.tokens_total) AS n FROM results r JOIN clips c ON c.id = r.clip_id"
            " WHERE c.found_at >= ? AND c.found_at < ?"
            " AND c.id IN (SELECT event_id FROM event_members)",
            (start, end),
        )
        if row is None:
            return Footage(0.0, 0.0, 0)
        return Footage(
            float(row["recorded"]),
            float(row["uploaded"]),
            int(row["idle"]),
            int(row["events"]),
            int(tokens["n"]) if tokens is not None else 0,
        )

    def tokens_between(self, start: float, end: float) -> int:
        row = self._db.row(
            "SELECT TOTAL(tokens_total) AS n FROM results"
            " WHERE received_at >= ? AND received_at < ?",
            (start, end),
        )
        return int(row["n"]) if row is not None else 0

    def tokens(self, now: float) -> TokenTotals:
        rows = self._db.rows(
            # TOTAL (a float), not SUM: a sum of hostile counts must not overflow and stop edged.
            "SELECT TOTAL(tokens_total) AS n,"
            " TOTAL(CASE WHEN received_at >= ? THEN tokens_total END) AS today"
            " FROM results",
            (utc_day_start(now),),
        )
        return TokenTotals(int(rows[0]["n"]), int(rows[0]["today"])) if rows else TokenTotals(0, 0)

    def recent_errors(self, count: int) -> list[ClipError]:
        """The last errors of clips that failed, wait, expired or were skipped, latest first."""
        rows = self._db.rows(
            "SELECT id, camera, last_error FROM clips WHERE last_error IS NOT NULL"
            f" AND state IN ({_marks(_ERROR_STATES)}) ORDER BY updated_at DESC LIMIT ?",
            (*_ERROR_STATES, count),
        )
        return [ClipError(row["id"], row["camera"], row["last_error"]) for row in rows]

    def finished_steps(self, since: float) -> list[tuple[str, str, float]]:
        """(from column, to column, seconds) of each step of every clip done after `since`."""
        columns = [column for column, _ in CLIP_STEPS]
        rows = self._db.rows(f"SELECT {', '.join(columns)} FROM clips WHERE done_at > ?", (since,))
        steps = []
        for row in rows:
            for start, end in itertools.pairwise(columns):
                if row[start] is not None and row[end] is not None:
                    steps.append((start, end, max(0.0, row[end] - row[start])))
        return steps

    def clip_alerts(self, clip_id: int) -> list[ClipAlert]:
        rows = self._db.rows(
            "SELECT person, sink, state, sent_at, created_at FROM alerts WHERE clip_id=?"
            " ORDER BY person, sink",
            (clip_id,),
        )
        return [
            ClipAlert(row["person"], row["sink"], row["state"], row["created_at"], row["sent_at"])
            for row in rows
        ]

    def clip_events(self, clip_id: int) -> list[ClipEvent]:
        rows = self._db.rows(
            "SELECT at, kind, detail FROM events WHERE clip_id=? ORDER BY id", (clip_id,)
        )
        return [ClipEvent(row["at"], row["kind"], row["detail"]) for row in rows]

    def clip_states(self) -> list[tuple[int, str, str]]:
        """(id, path, state) of every clip, in the order they were found."""
        rows = self._db.rows("SELECT id, path, state FROM clips ORDER BY id")
        return [(row["id"], row["path"], row["state"]) for row in rows]

    def awaiting_results(self, uploaded_since: float) -> int:
        """Clips uploaded since then that wait for their result, and clips waiting for alerts."""
        rows = self._db.rows(
            "SELECT COUNT(*) AS n FROM clips"
            " WHERE (state=? AND upload_finished_at >= ?) OR state=?",
            (ClipState.SUBMITTED, uploaded_since, ClipState.ANALYZED),
        )
        return int(rows[0]["n"])

    def camera_activity(self, after_clip_id: int) -> list[CameraActivity]:
        """Per camera, its latest clip among those after `after_clip_id`: when, and its id."""
        rows = self._db.rows(
            "SELECT camera, MAX(found_at) AS heard, MAX(id) AS top FROM clips WHERE id > ?"
            " GROUP BY camera",
            (after_clip_id,),
        )
        return [CameraActivity(row["camera"], row["heard"], row["top"]) for row in rows]

    def camera_outages(self) -> list[CameraOutages]:
        rows = self._db.rows(
            "SELECT camera, SUM(ended_at IS NULL) AS open, MAX(ended_at) AS ended FROM outages"
            " GROUP BY camera"
        )
        return [CameraOutages(row["camera"], bool(row["open"]), row["ended"]) for row in rows]
