"""The crash soak's audit of a camera with `upload: activity` and event clips, read from the
ledger (the `clips`, `event_members` and `events` tables) and the storage folder once edged
has settled.

The promise: `audit_events(...)` returns an `EventAudit` whose `problems` are empty when, for
every recording the writer finished:

- it is `done` itself, or `merged` into exactly one event clip that is `done`, or
  `skipped_idle`, and `skipped_idle` only when the script puts no walk in it or within its
  rolls (`Expect`, tests/support/event_footage.py); a clip the script calls idle is not sent;
- an event clip's members are the clips its `queued` event names, all `merged`, at least two,
  back to back in time; what it holds lies within their span and covers every active second
  the gate found in them with the rolls (it is trimmed at keyframes to that); no clip is a
  member of two event clips, and no member was also uploaded on its own;
- every file under `.events` is an event clip the ledger knows (a join a kill interrupted
  left none that no later join wrote over), and no `.part` is left there.

Also counted, not a problem (nothing is lost, the footage goes in two uploads): `split`, the
uploads (an event clip, or a clip sent alone) that end where the next begins, the two within
`max_event_s`: footage joined in two (its next recording was found only after a later one
closed the event: a folder's catch-up after a restart).
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edged.sources.event_maker import events_root
from tests.support.event_footage import Expect, Script
from tests.support.ledger import rows

#: Recordings further apart than this are not one event (edged/sources/event_rules.py).
EVENT_GAP_S = 2.0
#: An event clip's length against its members' (each member's packets, shifted).
LENGTH_TOLERANCE_S = 0.5
#: The soak's activity camera keeps the default rolls (edged/config/activity.py).
PRE_ROLL_S = POST_ROLL_S = 5.0


@dataclass(frozen=True)
class Written:
    """A recording the writer finished: the n-th of the script, at `path`."""

    n: int
    path: Path


@dataclass
class EventAudit:
    written: int = 0
    done_alone: int = 0  # sent as themselves: an event of one clip
    merged: int = 0
    skipped_idle: int = 0
    at_edge: Counter[str] = field(default_factory=Counter)  # outcome of the EDGE clips
    event_sizes: list[int] = field(default_factory=list)  # members of each event clip
    lost: list[str] = field(default_factory=list)
    idle_sent: list[str] = field(default_factory=list)
    merged_twice: list[str] = field(default_factory=list)
    bad_events: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [f"lost: {item}" for item in self.lost]
        found += [f"idle clip sent: {item}" for item in self.idle_sent]
        found += [f"merged twice: {item}" for item in self.merged_twice]
        found += [f"event clip: {item}" for item in self.bad_events]
        found += [f"event file unknown to the ledger: {item}" for item in self.orphans]
        found += [f".part left under .events: {item}" for item in self.parts]
        return found


def _rows(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    return rows(db, sql, *params)


def _begin(row: sqlite3.Row) -> float:
    return datetime.fromisoformat(row["start_at"]).timestamp()


def audit_events(
    db: Path,
    storage_dir: Path,
    camera: str,
    script: Script,
    written: Sequence[Written],
    uploaded: Collection[int],
    max_event_s: float,
) -> EventAudit:
    """Blocking. `uploaded`: the ids of the clips whose upload the API accepted."""
    audit = EventAudit(written=len(written))
    clips = {row["id"]: row for row in _rows(db, "SELECT * FROM clips WHERE camera=?", camera)}
    by_path = {row["path"]: row for row in clips.values()}
    event_of = {
        row["member_id"]: row["event_id"]
        for row in _rows(db, "SELECT member_id, event_id FROM event_members")
    }
    for item in written:
        row = by_path.get(str(item.path))
        expect = script.expect(item.n)
        outcome = _outcome(audit, row, expect, clips, event_of, item)
        if expect is Expect.EDGE:
            audit.at_edge[outcome] += 1
        elif expect is Expect.IDLE and outcome in ("sent", "merged"):
            audit.idle_sent.append(f"{item.path.name} (clip {row['id'] if row else '-'})")
    folder = events_root(storage_dir) / camera
    events = {i: row for i, row in clips.items() if Path(row["path"]).parent == folder}
    _check_events(audit, db, clips, events, event_of, uploaded)
    sent = [row for i, row in clips.items() if i in events or row["state"] == "done"]
    sent = [row for row in sent if row["start_at"] is not None]
    _find_splits(audit, sorted(sent, key=_begin), max_event_s)
    for path in sorted(folder.glob("*.mp4")) if folder.exists() else []:
        if str(path) not in by_path:
            audit.orphans.append(str(path))
    audit.parts += [str(p) for p in sorted(events_root(storage_dir).rglob("*.part"))]
    return audit


def _outcome(
    audit: EventAudit,
    row: sqlite3.Row | None,
    expect: Expect,
    clips: dict[int, sqlite3.Row],
    event_of: dict[int, int],
    item: Written,
) -> str:
    name = item.path.name
    if row is None:
        audit.lost.append(f"{name}: written, never in the ledger")
        return "lost"
    state = row["state"]
    if state == "done":
        audit.done_alone += 1
        return "sent"
    if state == "merged":
        event = clips.get(event_of.get(row["id"], -1))
        if event is None:
            audit.lost.append(f"{name} (clip {row['id']}): merged into no event clip")
            return "lost"
        if event["state"] != "done":
            audit.lost.append(
                f"{name} (clip {row['id']}): merged into event clip {event['id']},"
                f" which is {event['state']} {event['last_error'] or ''}"
            )
            return "lost"
        audit.merged += 1
        return "merged"
    if state == "skipped_idle" and expect is not Expect.MUST_GO:
        audit.skipped_idle += 1
        return "skipped"
    why = "; a walk is in it or within its rolls" if state == "skipped_idle" else ""
    audit.lost.append(f"{name} (clip {row['id']}): {state} {row['last_error'] or ''}{why}")
    return "lost"


def _check_events(
    audit: EventAudit,
    db: Path,
    clips: dict[int, sqlite3.Row],
    events: dict[int, sqlite3.Row],
    event_of: dict[int, int],
    uploaded: Collection[int],
) -> None:
    active = {
        row["clip_id"]: json.loads(row["active"])
        for row in _rows(db, "SELECT clip_id, active FROM activity")
        if row["active"] is not None
    }
    named: dict[int, list[int]] = {}  # event clip → the members its `queued` event names
    for row in _rows(db, "SELECT clip_id, detail FROM events WHERE kind='queued'"):
        if row["clip_id"] in events and (detail := row["detail"] or "").startswith("event of"):
            named.setdefault(row["clip_id"], []).extend(int(x) for x in re.findall(r"\d+", detail))
    claimed: Counter[int] = Counter(m for members in named.values() for m in members)
    audit.merged_twice += [f"clip {m} in {n} events" for m, n in claimed.items() if n > 1]
    for event_id, event in sorted(events.items()):
        members = sorted(m for m, e in event_of.items() if e == event_id)
        audit.event_sizes.append(len(members))
        where = f"{event_id} ({Path(event['path']).name})"
        if event["state"] != "done":
            audit.lost.append(f"event clip {where}: {event['state']} {event['last_error'] or ''}")
        if members != sorted(named.get(event_id, [])):
            audit.bad_events.append(f"{where}: members {members}, queued as {named.get(event_id)}")
        if len(members) < 2:
            audit.bad_events.append(f"{where}: {len(members)} members")
        rows = sorted((clips[m] for m in members if m in clips), key=_begin)
        not_merged = [r["id"] for r in rows if r["state"] != "merged"]
        if not_merged or len(rows) != len(members):
            audit.bad_events.append(f"{where}: members not merged {not_merged} or unknown")
        if not rows:
            continue
        for before, after in itertools.pairwise(rows):
            if _begin(after) - (_begin(before) + before["duration_s"]) > EVENT_GAP_S:
                audit.bad_events.append(f"{where}: clips {before['id']}, {after['id']} apart")
        _check_kept(audit, where, event, rows, active)
        twice = sorted(set(members) & set(uploaded))
        if twice:
            audit.merged_twice.append(f"clips {twice} uploaded and in event clip {where}")


def _check_kept(
    audit: EventAudit,
    where: str,
    event: sqlite3.Row,
    rows: list[sqlite3.Row],
    active: dict[int, list[int]],
) -> None:
    """The event clip's footage lies within its members' and covers their activity and its
    rolls (within the members)."""
    first, last = _begin(rows[0]), _begin(rows[-1]) + rows[-1]["duration_s"]
    begin = _begin(event)
    end = begin + event["duration_s"]
    tolerance = LENGTH_TOLERANCE_S
    if begin < first - tolerance or end > last + tolerance:
        audit.bad_events.append(f"{where}: holds {begin - first:+.1f}..{end - last:+.1f}s out")
    seen = [
        (_begin(r) + min(active[r["id"]]), _begin(r) + max(active[r["id"]]) + 1)
        for r in rows
        if active.get(r["id"])
    ]
    if not seen:
        return
    wanted_from = max(first, min(a for a, _ in seen) - PRE_ROLL_S)
    wanted_to = min(last, max(b for _, b in seen) + POST_ROLL_S)
    if begin > wanted_from + tolerance or end < wanted_to - tolerance:
        audit.bad_events.append(
            f"{where}: holds {begin - first:.1f}-{end - first:.1f}s of its members, not all of"
            f" their activity and rolls ({wanted_from - first:.1f}-{wanted_to - first:.1f}s)"
        )


def _find_splits(audit: EventAudit, sent: list[sqlite3.Row], max_event_s: float) -> None:
    """`sent` in order of time: an event clip or a clip sent alone, each one upload."""
    for before, after in itertools.pairwise(sent):
        end = _begin(before) + before["duration_s"]
        if (
            _begin(after) - end <= EVENT_GAP_S
            and after["duration_s"] + before["duration_s"] <= max_event_s
        ):
            audit.split.append(
                f"clip {before['id']} ({Path(before['path']).name}, {before['duration_s']:.0f}s)"
                f" then clip {after['id']} ({Path(after['path']).name})"
            )
