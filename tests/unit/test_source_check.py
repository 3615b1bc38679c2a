"""The uploader's check that a recording is still the one queued."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edged.clip import Clip, ClipState
from edged.media.source_check import FINGERPRINT_BYTES, changed_since_queued, fingerprint_of
from edged.sources.recordings import file_fingerprint


def clip_of(path: Path, fingerprint: str | None) -> Clip:
    return Clip(
        id=1,
        camera="cam",
        path=path,
        size=path.stat().st_size,
        state=ClipState.QUEUED,
        attempts=0,
        start=datetime.now(UTC),
        duration_s=1.0,
        callback_token=None,
        task_id=None,
        last_error=None,
        next_attempt_at=None,
        found_at=0.0,
        fingerprint=fingerprint,
    )


@pytest.mark.parametrize("size", [0, 10, FINGERPRINT_BYTES + 7, 2 * FINGERPRINT_BYTES + 1, 10**6])
def test_a_changed_byte_at_either_end_is_seen_and_the_read_position_is_kept(
    tmp_path: Path, size: int
) -> None:
    path = tmp_path / "rec.mp4"
    path.write_bytes(os.urandom(size))
    clip = clip_of(path, file_fingerprint(path, size))
    with path.open("rb") as handle:
        assert changed_since_queued(clip, handle.fileno()) is None
        assert handle.tell() == 0, "the upload reads from the start"
    if size == 0:
        return
    for offset in (0, size - 1):
        data = bytearray(path.read_bytes())
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
        with path.open("rb") as handle:
            assert "other content" in (changed_since_queued(clip, handle.fileno()) or "")
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))


def test_another_size_is_a_change_and_unfingerprinted_clips_are_not_checked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rec.mp4"
    path.write_bytes(b"x" * 1000)
    folder_clip = clip_of(path, file_fingerprint(path, 1000))
    own_clip = clip_of(path, None)
    path.write_bytes(b"x" * 1200)
    with path.open("rb") as handle:
        reason = changed_since_queued(folder_clip, handle.fileno())
        assert reason == "source changed since it was queued: 1000 bytes then, 1200 now"
        assert changed_since_queued(own_clip, handle.fileno()) is None
    with path.open("rb") as handle:
        assert fingerprint_of(handle.fileno(), 1200) == file_fingerprint(path, 1200)


def test_a_link_put_in_place_of_a_queued_recording_is_a_change(tmp_path: Path) -> None:
    """The uploader opens the clip's path: a symlink there (even to an identical copy of the
    recording) leads to another file, and that file is not sent under the clip."""
    (tmp_path / "nvr").mkdir()
    path = tmp_path / "nvr" / "rec.mp4"
    path.write_bytes(os.urandom(5000))
    clip = clip_of(path, file_fingerprint(path, 5000))
    copy = tmp_path / "elsewhere.mp4"
    copy.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(copy)
    with path.open("rb") as handle:  # as the uploader opens it: the link is followed
        reason = changed_since_queued(clip, handle.fileno())
    assert reason == f"source changed since it was queued: the path now leads to {copy}"
    path.unlink()
    os.link(copy, path)  # the same file under its own name again: fine
    with path.open("rb") as handle:
        assert changed_since_queued(clip, handle.fileno()) is None
