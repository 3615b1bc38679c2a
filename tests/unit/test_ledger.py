"""The ledger's transitions, on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edged.clip import ClipState, NewClip
from edged.ledger.activity import ClipActivityRecord
from edged.ledger.results import Tokens
from edged.ledger.schema import SCHEMA_VERSION, LedgerError
from edged.ledger.store import Ledger


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> Ledger:
    return Ledger(tmp_path, clock=clock)


def add(ledger: Ledger, name: str = "a.mp4", key: str | None = None) -> int:
    clip, created = ledger.clips.add(NewClip("cam", Path(name), 100, source_key=key))
    assert created
    return clip.id


def test_wal_mode_and_schema_version(ledger: Ledger) -> None:
    conn = sqlite3.connect(ledger.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Ledger(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    with pytest.raises(LedgerError, match="schema version 99, newer"):
        Ledger(tmp_path)


def test_a_version_2_ledger_is_upgraded_in_place_and_keeps_its_clips(tmp_path: Path) -> None:
    """The release before the activity gate wrote version 2: opened now, it gains the
    activity table and every clip it had is still there."""
    Ledger(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    conn.execute("DROP TABLE activity")
    conn.execute("DROP INDEX clips_by_camera_found")
    conn.execute("DROP TABLE reviews")
    conn.execute("DROP TABLE event_members")
    conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    conn.execute(
        "INSERT INTO clips (camera, path, size, state, found_at, updated_at)"
        " VALUES ('cam', 'old.mp4', 1, 'queued', 1, 1)"
    )
    conn.commit()
    conn.close()
    ledger = Ledger(tmp_path)
    assert [clip.path.name for clip in ledger.clips.in_state(ClipState.QUEUED)] == ["old.mp4"]
    examined, _ = ledger.clips.add(NewClip("cam", Path("new.mp4"), 1, examine=True))
    found = ClipActivityRecord(10.0, (), 0.0, 0.0, 10)
    assert ledger.activity.examined(examined.id, found) is ClipState.SKIPPED_IDLE
    assert ledger.activity.of(examined.id) == found
    version = ledger.db.row("SELECT value FROM meta WHERE key='schema_version'")
    assert version is not None and int(version["value"]) == SCHEMA_VERSION == 3
    ledger.close()


def test_the_gate_moves_a_clip_once_and_only_from_examining(ledger: Ledger) -> None:
    clip, _ = ledger.clips.add(NewClip("cam", Path("a.mp4"), 100, examine=True))
    assert clip.state is ClipState.EXAMINING
    assert ledger.uploads.take_for_upload() is None  # not uploaded before it is examined
    active = ClipActivityRecord(10.0, (3, 4), 12.5, 0.01, 10)
    assert ledger.activity.examined(clip.id, active) is ClipState.QUEUED
    assert ledger.activity.examined(clip.id, active) is None  # a second look changes nothing
    assert not ledger.activity.unreadable(clip.id, "late")
    taken = ledger.uploads.take_for_upload()
    assert taken is not None and taken.id == clip.id


def test_an_idle_clip_is_kept_and_sent_after_retry(ledger: Ledger) -> None:
    clip, _ = ledger.clips.add(NewClip("cam", Path("a.mp4"), 100, examine=True))
    ledger.activity.examined(clip.id, ClipActivityRecord(10.0, (), 1.0, 0.0, 10))
    idle = ledger.clips.get(clip.id)
    assert idle is not None and idle.state is ClipState.SKIPPED_IDLE
    assert ledger.uploads.take_for_upload() is None
    assert ledger.uploads.retry(every=[ClipState.SKIPPED_IDLE]) == [clip.id]
    again = ledger.uploads.take_for_upload()
    assert again is not None and again.id == clip.id and again.exempt


def test_same_source_key_is_not_added_twice(ledger: Ledger) -> None:
    first, created = ledger.clips.add(NewClip("cam", Path("a.mp4"), 100, source_key="k1"))
    again, created_again = ledger.clips.add(NewClip("cam", Path("b.mp4"), 100, source_key="k1"))
    assert created and not created_again
    assert again.id == first.id


def test_take_counts_attempt_and_gives_a_fresh_128_bit_token(ledger: Ledger) -> None:
    clip_id = add(ledger)
    taken = ledger.uploads.take_for_upload()
    assert taken is not None and taken.id == clip_id
    assert taken.state is ClipState.UPLOADING and taken.attempts == 1
    assert taken.callback_token is not None and len(taken.callback_token) >= 22
    first_token = taken.callback_token
    ledger.uploads.mark_retry(clip_id, "503", next_attempt_at=0)
    again = ledger.uploads.take_for_upload()
    assert again is not None and again.attempts == 2
    assert again.callback_token != first_token


def test_retry_wait_is_not_taken_before_it_is_due(ledger: Ledger, clock: FakeClock) -> None:
    clip_id = add(ledger)
    ledger.uploads.take_for_upload()
    ledger.uploads.mark_retry(clip_id, "HTTP 503", next_attempt_at=clock.now + 60)
    assert ledger.uploads.take_for_upload() is None
    assert ledger.uploads.next_due_at() == clock.now + 60
    clock.now += 61
    assert ledger.uploads.take_for_upload() is not None


def test_resume_puts_uploading_back_in_the_queue(tmp_path: Path, clock: FakeClock) -> None:
    ledger = Ledger(tmp_path, clock=clock)
    add(ledger)
    ledger.uploads.take_for_upload()
    ledger.close()
    reopened = Ledger(tmp_path, clock=clock)
    assert reopened.uploads.resume() == 1
    assert reopened.clips.in_state(ClipState.QUEUED)[0].attempts == 1


def test_callback_before_submitted_is_not_moved_back(ledger: Ledger) -> None:
    clip_id = add(ledger)
    ledger.uploads.take_for_upload()
    assert ledger.results.record_result(clip_id, task_id="t1", text="hi", tokens=Tokens(), raw="{}")
    ledger.uploads.mark_submitted(clip_id, "t1")
    clip = ledger.clips.get(clip_id)
    assert clip is not None and clip.state is ClipState.ANALYZED


def test_repeated_result_changes_nothing(ledger: Ledger) -> None:
    clip_id = add(ledger)
    ledger.uploads.take_for_upload()
    ledger.uploads.mark_submitted(clip_id, "t1")
    assert ledger.results.record_result(
        clip_id, task_id="t1", text="first", tokens=Tokens(total=3), raw="{}"
    )
    ledger.results.mark_done(clip_id)
    assert not ledger.results.record_result(
        clip_id, task_id="t1", text="second", tokens=Tokens(), raw="{}"
    )
    result = ledger.results.result(clip_id)
    clip = ledger.clips.get(clip_id)
    assert result is not None and result.text == "first" and result.tokens_total == 3
    assert clip is not None and clip.state is ClipState.DONE


def test_expiry_then_failure_after_max_attempts(ledger: Ledger, clock: FakeClock) -> None:
    clip_id = add(ledger)
    for attempt in (1, 2):
        taken = ledger.uploads.take_for_upload()
        assert taken is not None and taken.attempts == attempt
        ledger.uploads.mark_submitted(clip_id, f"t{attempt}")
        clock.now += 100
        assert ledger.uploads.expire_overdue(result_timeout_s=200, max_attempts=2) == []
        clock.now += 101
        expired = ledger.uploads.expire_overdue(result_timeout_s=200, max_attempts=2)
        assert [c.id for c in expired] == [clip_id]
    clip = ledger.clips.get(clip_id)
    assert clip is not None and clip.state is ClipState.FAILED
    assert clip.last_error is not None and "after 2 attempts" in clip.last_error


def test_release_does_not_count_the_attempt(ledger: Ledger) -> None:
    clip_id = add(ledger)
    ledger.uploads.take_for_upload()
    ledger.uploads.release(clip_id, "HTTP 401")
    clip = ledger.clips.get(clip_id)
    assert clip is not None and clip.state is ClipState.QUEUED and clip.attempts == 0


def test_operator_retry_requeues_failed_only(ledger: Ledger) -> None:
    failed_id = add(ledger, "a.mp4")
    queued_id = add(ledger, "b.mp4")
    taken = ledger.uploads.take_for_upload()
    assert taken is not None and taken.id == failed_id
    ledger.uploads.mark_failed(failed_id, "HTTP 400")
    assert ledger.uploads.retry([failed_id, queued_id]) == [failed_id]
    clip = ledger.clips.get(failed_id)
    assert clip is not None and clip.state is ClipState.QUEUED and clip.attempts == 0


def test_timings_are_recorded(ledger: Ledger, clock: FakeClock) -> None:
    clip_id = add(ledger)
    clock.now += 1
    ledger.uploads.take_for_upload()
    clock.now += 2
    ledger.uploads.mark_submitted(clip_id, "t")
    clock.now += 3
    ledger.results.record_result(clip_id, task_id="t", text="x", tokens=Tokens(), raw="{}")
    times = ledger.results.timings(clip_id)
    assert times is not None
    assert times.upload_started_at is not None and times.upload_finished_at is not None
    assert times.callback_at is not None
    assert times.upload_started_at - times.found_at == 1
    assert times.upload_finished_at - times.upload_started_at == 2
    assert times.callback_at - times.upload_finished_at == 3
    assert ledger.integrity_ok()


def test_every_callback_url_issued_stays_known_when_an_attempt_is_given_back(
    ledger: Ledger, clock: FakeClock
) -> None:
    """An untried upload gives its attempt back; the token it was sent with must not be
    overwritten by the next one (the service may still call back on it)."""
    clip_id = add(ledger)
    first = ledger.uploads.take_for_upload()
    assert first is not None
    ledger.uploads.mark_retry(clip_id, "HTTP 503", clock() - 1, counted=False)
    second = ledger.uploads.take_for_upload()
    assert second is not None and second.attempts == first.attempts
    ledger.uploads.release(clip_id, "refused key")
    third = ledger.uploads.take_for_upload()
    assert third is not None
    issued = [token for token, _ in ledger.uploads.issued_tokens(clip_id)]
    assert issued == [third.callback_token, second.callback_token, first.callback_token]
    assert len(set(issued)) == 3
