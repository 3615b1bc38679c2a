"""How results were read, in the ledger. Two counters in `meta`, kept in the transaction that
marks each clip done, so reading them costs nothing however large the ledger grows; and each
clip's `done` event detail (JSON: whether its result had a valid verdict, why not, the prose
mentions), for `edged status`. Blocking; on the ledger's thread."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from edged.ledger.connection import LedgerConnection
from edged.ledger.meta import MetaRecords

TOTAL = "results_without_verdict"
STREAK = "results_without_verdict_in_a_row"
_VERDICT = "CASE WHEN json_valid(e.detail) THEN json_extract(e.detail, '$.verdict') END"


@dataclass(frozen=True, slots=True)
class NoVerdict:
    clip_id: int
    camera: str
    status: str  # missing, invalid, conflict
    problem: str | None
    mentions: tuple[str, ...]  # "Alice: the sentence naming her"


class VerdictStats:
    def __init__(self, db: LedgerConnection, meta: MetaRecords) -> None:
        self._db = db
        self._meta = meta

    def count_in(self, conn: sqlite3.Connection, has_verdict: bool) -> None:
        """Inside the transaction that marks the clip done."""
        if not has_verdict:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key)"
                " DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                (TOTAL,),
            )
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = CASE WHEN ? THEN '0' ELSE CAST(value AS INTEGER) + 1 END",
            (STREAK, "0" if has_verdict else "1", has_verdict),
        )

    def total(self) -> int:
        return int(self._meta.get(TOTAL) or 0)

    def streak(self) -> int:
        """Results without a valid verdict since the last one with a verdict."""
        return int(self._meta.get(STREAK) or 0)

    def health(self) -> dict[str, int]:
        """For /healthz: reported, not judged (a service that ignores the format still works)."""
        return {
            "results_without_verdict": self.total(),
            "without_verdict_in_a_row": self.streak(),
        }

    def recent(self, count: int = 5) -> list[NoVerdict]:
        if not self.total():
            return []
        rows = self._db.rows(
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
