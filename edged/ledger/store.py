"""The ledger: one SQLite connection and the repositories on it.

`ledger.clips.add(...)`, `ledger.uploads.take_for_upload()`, `ledger.results.mark_done(...)`:
each name says where the statement lives. `Ledger` is blocking; the daemon reaches it through
`AsyncLedger` (edged/ledger/thread.py), which runs each call on one dedicated thread so the
event loop never waits on SQLite or fsync.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edged.ledger.activity import ActivityRecords
from edged.ledger.clips import ClipRecords
from edged.ledger.connection import LEDGER_FILE, LedgerConnection
from edged.ledger.event_clips import EventRecords
from edged.ledger.meta import MetaRecords
from edged.ledger.outages import OutageRecords
from edged.ledger.outbox import Outbox
from edged.ledger.quota import QuotaRecords
from edged.ledger.reports import Reports
from edged.ledger.results import ResultRecords
from edged.ledger.reviews import ReviewRecords
from edged.ledger.uploads import UploadRecords
from edged.ledger.verdict_stats import VerdictStats

__all__ = ["LEDGER_FILE", "Ledger"]


class Ledger:
    def __init__(self, storage_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.db = LedgerConnection(storage_dir, clock=clock)
        self.path = self.db.path
        self.meta = MetaRecords(self.db)
        self.clips = ClipRecords(self.db)
        self.uploads = UploadRecords(self.db)
        self.activity = ActivityRecords(self.db)
        self.reviews = ReviewRecords(self.db)
        self.event_clips = EventRecords(self.db, self.clips)
        self.outbox = Outbox(self.db)
        self.verdicts = VerdictStats(self.db, self.meta)
        self.results = ResultRecords(self.db, self.outbox, self.verdicts)
        self.outages = OutageRecords(self.db)
        self.quota = QuotaRecords(self.db)
        self.reports = Reports(self.db)

    def close(self) -> None:
        self.db.close()

    def integrity_ok(self) -> bool:
        return self.db.integrity_ok()
