"""How results were read, from the ledger: each clip's `done` event carries, as JSON, whether
its result had a valid verdict (edged/matcher.py `Reading.detail`). Blocking; ledger thread."""

from __future__ import annotations

import json
from dataclasses import dataclass

from edged.ledger import Ledger

_VERDICT = "CASE WHEN json_valid(e.detail) THEN json_extract(e.detail, '$.verdict') END"
#: How far back a run of results without a verdict is counted.
STREAK_LOOKBACK = 1000


@dataclass(frozen=True, slots=True)
class NoVerdict:
    clip_id: int
    camera: str
    status: str  # missing, invalid, conflict
    problem: str | None
    mentions: tuple[str, ...]  # "Alice: «the sentence naming her»"


def without_verdict_total(ledger: Ledger) -> int:
    rows = ledger.execute(
        f"SELECT COUNT(*) AS n FROM events e WHERE e.kind='done' AND {_VERDICT} != 'ok'"
    )
    return int(rows[0]["n"]) if rows else 0


def without_verdict_streak(ledger: Ledger) -> int:
    """Results without a valid verdict since the last one with a verdict (newest first)."""
    rows = ledger.execute(
        f"SELECT {_VERDICT} AS verdict FROM events e WHERE e.kind='done'"
        " ORDER BY e.id DESC LIMIT ?",
        (STREAK_LOOKBACK,),
    )
    streak = 0
    for row in rows:
        if row["verdict"] is None:
            continue  # done before results were read this way
        if row["verdict"] == "ok":
            break
        streak += 1
    return streak


def recent_without_verdict(ledger: Ledger, count: int = 5) -> list[NoVerdict]:
    rows = ledger.execute(
        f"SELECT e.clip_id, c.camera, e.detail FROM events e JOIN clips c ON c.id = e.clip_id"
        f" WHERE e.kind='done' AND {_VERDICT} != 'ok' ORDER BY e.id DESC LIMIT ?",
        (count,),
    )
    found = []
    for row in rows:
        detail = json.loads(row["detail"])
        mentions = tuple(
            f"{m.get('person')}{'' if m.get('present') else ' (absent)'}: {m.get('evidence')}"
            for m in detail.get("mentions", [])
            if isinstance(m, dict)
        )
        found.append(
            NoVerdict(
                row["clip_id"],
                row["camera"],
                str(detail.get("verdict")),
                detail.get("problem"),
                mentions,
            )
        )
    return found


def verdict_health(ledger: Ledger) -> dict[str, int]:
    """For /healthz: reported, not judged (a service that ignores the format still works)."""
    return {
        "results_without_verdict": without_verdict_total(ledger),
        "without_verdict_in_a_row": without_verdict_streak(ledger),
    }
