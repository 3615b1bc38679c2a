"""Metrics read from the ledger: accepted uploads, duplicates, interrupted uploads, and the
oldest pending clip as `edged status` reads it."""

from __future__ import annotations

from pathlib import Path

from edged.clip import NewClip
from edged.commands.status import build_report, format_report
from edged.ledger.store import Ledger
from edged.service.metrics import read_snapshot


def test_duplicates_and_interrupted_uploads_are_counted(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    crashed, _ = ledger.clips.add(NewClip("cam", tmp_path / "a.mp4", 10))
    stopped, _ = ledger.clips.add(NewClip("cam", tmp_path / "b.mp4", 10))
    assert ledger.uploads.take_for_upload(crashed.id) is not None
    ledger.close()

    # A crash mid-upload: the clip is resumed on start, uploaded again and accepted twice.
    ledger = Ledger(tmp_path)
    assert ledger.uploads.resume() == 1
    assert ledger.uploads.take_for_upload(crashed.id) is not None
    ledger.uploads.mark_submitted(crashed.id, "task-1")
    # A stop mid-upload gives the clip back.
    assert ledger.uploads.take_for_upload(stopped.id) is not None
    ledger.uploads.release(stopped.id, "interrupted")
    snapshot = read_snapshot(ledger, now=0.0)
    assert (snapshot.uploads_accepted, snapshot.duplicate_uploads) == (1, 0)
    assert snapshot.uploads_interrupted == 2

    ledger.db.rows("UPDATE clips SET state='expired' WHERE id=?", (crashed.id,))
    assert ledger.uploads.take_for_upload(crashed.id) is not None
    ledger.uploads.mark_submitted(crashed.id, "task-2")
    snapshot = read_snapshot(ledger, now=0.0)
    assert (snapshot.uploads_accepted, snapshot.duplicate_uploads) == (2, 1)
    ledger.close()


def test_status_and_metrics_agree_on_the_oldest_pending_clip(tmp_path: Path) -> None:
    """One definition of pending: a clip analyzed but not yet done (its alerts still to go)
    is pending for `edged status` as for /metrics, and a done clip is neither's."""
    ledger = Ledger(tmp_path)
    finished, _ = ledger.clips.add(NewClip("cam", tmp_path / "a.mp4", 10))
    analyzed, _ = ledger.clips.add(NewClip("cam", tmp_path / "b.mp4", 10))
    queued, _ = ledger.clips.add(NewClip("cam", tmp_path / "c.mp4", 10))
    for clip, state, found_at in ((finished, "done", 100.0), (analyzed, "analyzed", 200.0)):
        ledger.db.rows(
            "UPDATE clips SET state=?, found_at=? WHERE id=?", (state, found_at, clip.id)
        )
    ledger.db.rows("UPDATE clips SET found_at=300.0 WHERE id=?", (queued.id,))

    now = 1000.0
    assert read_snapshot(ledger, now=now).oldest_pending_age_s == 800.0
    report = build_report(ledger)
    assert report.oldest_pending_at == 200.0
    assert "oldest pending clip: 13m" in format_report(report, now=now)
    ledger.close()
