"""`edged status` redacts what it shows, whatever the ledger holds: rows written by an older
edged (before reasons were redacted when stored) must not show a camera's password."""

from __future__ import annotations

from pathlib import Path

from edged.ledger.store import Ledger
from tests.support.edged import run_edged, write_config

PASSWORD = "p@ss w/rd"


async def test_status_never_shows_a_stored_password(tmp_path: Path):
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        extra=(
            "cameras:\n  - name: porch\n"
            f"    rtsp: 'rtsp://admin:{PASSWORD}@192.0.2.10:554/stream1'\n"
        ),
    )
    ledger = Ledger(tmp_path / "state")
    try:  # as an older edged stored it: the URL as FFmpeg printed it
        reason = f"rtsp://admin:{PASSWORD}@192.0.2.10:554/stream1: Connection refused"
        ledger.db.rows(
            "INSERT INTO outages (camera, started_at, ended_at, reason) VALUES (?, ?, ?, ?)",
            ("porch", 1.0, None, reason),
        )
    finally:
        ledger.close()
    code, out, err = await run_edged("status", "-c", str(config))
    assert code == 0, err
    assert "camera porch: DOWN" in out and "Connection refused" in out
    assert PASSWORD not in out and "p@ss" not in out and "w/rd" not in out
