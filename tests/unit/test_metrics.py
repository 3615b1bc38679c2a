"""Metrics read from the ledger: accepted uploads, duplicates, interrupted uploads."""

from __future__ import annotations

from pathlib import Path

from edged.clip import NewClip
from edged.ledger.clips import Ledger
from edged.service.metrics import read_snapshot


def test_duplicates_and_interrupted_uploads_are_counted(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    crashed, _ = ledger.add_clip(NewClip("cam", tmp_path / "a.mp4", 10))
    stopped, _ = ledger.add_clip(NewClip("cam", tmp_path / "b.mp4", 10))
    assert ledger.take_for_upload(crashed.id) is not None
    ledger.close()

    # A crash mid-upload: the clip is resumed on start, uploaded again and accepted twice.
    ledger = Ledger(tmp_path)
    assert ledger.resume() == 1
    assert ledger.take_for_upload(crashed.id) is not None
    ledger.mark_submitted(crashed.id, "task-1")
    # A stop mid-upload gives the clip back.
    assert ledger.take_for_upload(stopped.id) is not None
    ledger.release(stopped.id, "interrupted")
    snapshot = read_snapshot(ledger, now=0.0)
    assert (snapshot.uploads_accepted, snapshot.duplicate_uploads) == (1, 0)
    assert snapshot.uploads_interrupted == 2

    ledger.execute("UPDATE clips SET state='expired' WHERE id=?", (crashed.id,))
    assert ledger.take_for_upload(crashed.id) is not None
    ledger.mark_submitted(crashed.id, "task-2")
    snapshot = read_snapshot(ledger, now=0.0)
    assert (snapshot.uploads_accepted, snapshot.duplicate_uploads) == (2, 1)
    ledger.close()
