"""Values the ledger keeps about itself: the install id, secrets made once, the upload pause.

`get_or_create` is the one way to make a value once: two callers racing for it get the same
value, the one committed first (the install id, the persons' token, the snapshot key and the
folder cameras' first start all use it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from edged.ledger.connection import LedgerConnection


class MetaRecords:
    def __init__(self, db: LedgerConnection) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        row = self._db.row("SELECT value FROM meta WHERE key=?", (key,))
        return str(row["value"]) if row else None

    def set(self, key: str, value: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The value of `key`; the first time, `make()`'s, stored."""
        existing = self.get(key)
        if existing is not None:
            return existing
        with self._db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, make()))
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row["value"])

    def install_id(self) -> str:
        """A random id of this ledger, made once: keeps alert ids unique across boxes."""
        return self.get_or_create("install_id", lambda: secrets.token_hex(8))

    def set_pause(self, reason: str | None, message: str | None, at: float) -> None:
        """Uploads paused (reason, what the service said, since when), or resumed (None): kept
        in the ledger, so `edged status`, /healthz and /metrics tell the same story."""
        with self._db.transaction() as conn:
            if reason is None:
                conn.execute("DELETE FROM meta WHERE key='uploads_paused'")
            else:
                value = json.dumps({"reason": reason, "message": message, "since": at})
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('uploads_paused', ?)",
                    (value,),
                )

    def pause(self) -> dict[str, Any] | None:
        """{reason, message, since} while uploads are paused, else None."""
        value = self.get("uploads_paused")
        if value is None:
            return None
        try:
            found = json.loads(value)
        except ValueError:
            return None
        return found if isinstance(found, dict) else None
