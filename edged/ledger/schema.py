"""The ledger's SQLite schema, its version, and the connection settings it relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edged.errors import EdgedError

SCHEMA_VERSION = 3

# Version 1. A later release appends migration steps to MIGRATIONS, keyed by the
# version they upgrade from, so an old ledger is upgraded in place on start.
SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE clips (
    id                 INTEGER PRIMARY KEY,
    camera             TEXT NOT NULL,
    source             TEXT,
    path               TEXT NOT NULL,
    size               INTEGER NOT NULL,
    start_at           TEXT,
    duration_s         REAL,
    source_key         TEXT UNIQUE,
    fingerprint        TEXT,
    state              TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    failures           INTEGER NOT NULL DEFAULT 0,
    exempt             INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    REAL,
    callback_token     TEXT,
    task_id            TEXT,
    last_error         TEXT,
    found_at           REAL NOT NULL,
    upload_started_at  REAL,
    upload_finished_at REAL,
    callback_at        REAL,
    done_at            REAL,
    updated_at         REAL NOT NULL
);
CREATE INDEX clips_by_state ON clips (state, next_attempt_at);
CREATE INDEX clips_by_camera ON clips (camera, state);
CREATE TABLE results (
    clip_id       INTEGER PRIMARY KEY REFERENCES clips (id),
    task_id       TEXT,
    text          TEXT NOT NULL,
    tokens_input  INTEGER,
    tokens_output INTEGER,
    tokens_total  INTEGER,
    raw           TEXT NOT NULL,
    received_at   REAL NOT NULL
);
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    clip_id INTEGER REFERENCES clips (id),
    at      REAL NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX events_by_clip ON events (clip_id, at);
CREATE TABLE alerts (
    alert_id        TEXT NOT NULL,
    sink            TEXT NOT NULL,
    clip_id         INTEGER NOT NULL REFERENCES clips (id),
    camera          TEXT NOT NULL,
    person          TEXT NOT NULL,
    confidence      REAL NOT NULL,
    event_at        REAL NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at      REAL NOT NULL,
    sent_at         REAL,
    last_error      TEXT,
    PRIMARY KEY (alert_id, sink),
    UNIQUE (clip_id, person, sink)
);
CREATE TABLE outages (
    id         INTEGER PRIMARY KEY,
    camera     TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at   REAL,
    reason     TEXT NOT NULL
);
CREATE INDEX outages_by_camera ON outages (camera, ended_at);
CREATE INDEX alerts_by_state ON alerts (sink, state, next_attempt_at);
CREATE INDEX alerts_by_camera_person ON alerts (camera, person, sink, state, event_at);
"""

# Version 2: every upload attempt's callback token is kept (with the task id the service gave
# that attempt), so a late result of an earlier attempt is still recognised as the cloud's.
CALLBACK_TOKENS = """
CREATE TABLE callback_tokens (
    clip_id   INTEGER NOT NULL REFERENCES clips (id),
    attempt   INTEGER NOT NULL, -- the n-th callback URL issued for the clip
    token     TEXT NOT NULL,
    task_id   TEXT,
    issued_at REAL NOT NULL,
    PRIMARY KEY (clip_id, attempt)
);
"""

# Version 3: what the activity gate found in a clip (cameras with `upload: activity`): its
# active seconds from the clip's start, the peak score and area, how many frames it compared;
# and Frigate's review items, for the cameras with `upload: frigate`.
ACTIVITY = """
CREATE TABLE activity (
    clip_id     INTEGER PRIMARY KEY REFERENCES clips (id),
    seconds     REAL NOT NULL,    -- of video examined
    active      TEXT NOT NULL,    -- JSON list of the active seconds, from the clip's start
    active_s    INTEGER NOT NULL, -- how many
    peak_score  REAL NOT NULL,
    peak_area   REAL NOT NULL,
    samples     INTEGER NOT NULL,
    examined_at REAL NOT NULL
);
CREATE INDEX clips_by_camera_found ON clips (camera, found_at);
CREATE TABLE reviews (
    id         TEXT PRIMARY KEY, -- Frigate's review id
    camera     TEXT NOT NULL,    -- Frigate's camera name
    start_at   REAL NOT NULL,
    end_at     REAL,             -- NULL while the review is open
    severity   TEXT NOT NULL,
    objects    TEXT NOT NULL,    -- JSON list of labels
    updated_at REAL NOT NULL
);
CREATE INDEX reviews_by_camera ON reviews (camera, start_at);
CREATE INDEX reviews_by_end ON reviews (end_at);
CREATE TABLE event_members (
    member_id INTEGER PRIMARY KEY REFERENCES clips (id), -- merged into:
    event_id  INTEGER NOT NULL REFERENCES clips (id)      -- the event clip sent in its place
);
"""

MIGRATIONS: dict[int, str] = {
    1: CALLBACK_TOKENS
    + """
INSERT INTO callback_tokens (clip_id, attempt, token, task_id, issued_at)
    SELECT id, attempts, callback_token, task_id, updated_at FROM clips
    WHERE callback_token IS NOT NULL;
""",
    2: ACTIVITY,
}


class LedgerError(EdgedError):
    """The ledger cannot be opened or used."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or migrating) the ledger database at `path`; blocking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    # WAL lets `edged status` read while the daemon writes; synchronous=FULL makes
    # every committed transition survive a power cut, which the promises need and
    # which costs little at edged's write rate (a few transitions per clip).
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    _migrate(conn, path)
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            for statement in _statements(SCHEMA_V1 + CALLBACK_TOKENS + ACTIVITY):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        else:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row["value"]) if row else 0
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {path} has schema version {version}, newer than this edged "
                    f"({SCHEMA_VERSION}): upgrade edged or point storage.dir elsewhere"
                )
            if version < SCHEMA_VERSION:  # a current ledger opens without a write (full disk)
                while version < SCHEMA_VERSION:
                    for statement in _statements(MIGRATIONS[version]):
                        conn.execute(statement)
                    version += 1
                conn.execute(
                    "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
