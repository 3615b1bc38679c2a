"""The Clip record that sources hand to the ledger, and the states a clip moves through."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class ClipState(enum.StrEnum):
    EXAMINING = "examining"  # `upload: activity`: found, its activity not yet measured
    QUEUED = "queued"
    UPLOADING = "uploading"
    SUBMITTED = "submitted"
    ANALYZED = "analyzed"
    DONE = "done"
    RETRY_WAIT = "retry_wait"
    FAILED = "failed"
    EXPIRED = "expired"
    DROPPED = "dropped"  # deleted unsent by the storage quota (logged and counted)
    SKIPPED_BUDGET = "skipped_budget"  # over a daily budget: kept, sent after `edged retry`
    SKIPPED_SCHEDULE = "skipped_schedule"  # outside the camera's upload hours: likewise
    SKIPPED_IDLE = "skipped_idle"  # no activity (`upload: activity`): likewise
    IN_EVENT = "in_event"  # to be sent, held for its camera's event clip
    MERGED = "merged"  # its footage went into an event clip, which is sent in its place


#: States a clip never leaves on its own.
FINAL_STATES = frozenset({ClipState.DONE, ClipState.FAILED, ClipState.DROPPED, ClipState.MERGED})

#: States in which a clip's analysis may still arrive: it is being uploaded or was submitted,
#: or it waits to be sent again (a resubmission after a timeout or a failure) while a late
#: result of an earlier attempt may still come.
AWAITING_RESULT_STATES = frozenset(
    {
        ClipState.UPLOADING,
        ClipState.SUBMITTED,
        ClipState.QUEUED,
        ClipState.RETRY_WAIT,
        ClipState.EXPIRED,
    }
)

#: States in which the clip's analysis is in the ledger.
HAS_RESULT_STATES = frozenset({ClipState.ANALYZED, ClipState.DONE})

#: States in which a clip still waits for upload work.
PENDING_UPLOAD_STATES = frozenset({ClipState.QUEUED, ClipState.RETRY_WAIT, ClipState.EXPIRED})


@dataclass(frozen=True, slots=True)
class NewClip:
    """A finished clip as a source reports it, before the ledger gives it an id."""

    camera: str
    path: Path
    size: int
    start: datetime | None = None  # wall-clock start, UTC
    duration_s: float | None = None
    # Identity of the source file (device, inode, size, mtime_ns): a rename or a
    # restart must not enqueue the same recording twice.
    source_key: str | None = None
    # Hash of the file's head and tail: tells a touched file (same content) from a new
    # file that reuses a deleted one's inode, and lets the uploader see a replaced file.
    fingerprint: str | None = None
    # The configured camera that produced it, when it differs from `camera` (a preset folder
    # names each clip's camera from its path): its schedule and budget apply.
    source: str | None = None
    # Its camera uploads only clips with activity: the clip waits (`examining`) until the
    # activity gate has measured it.
    examine: bool = False


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip as the ledger knows it."""

    id: int
    camera: str
    path: Path
    size: int
    state: ClipState
    attempts: int
    start: datetime | None
    duration_s: float | None
    callback_token: str | None
    task_id: str | None
    last_error: str | None
    next_attempt_at: float | None
    found_at: float
    fingerprint: str | None = None
    failures: int = 0  # transient failures in a row, for the backoff
    exempt: bool = False  # requeued by an operator: the cost guardrails let it through
    source: str | None = None  # the configured camera, see NewClip.source
