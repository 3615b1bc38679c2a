"""The MP4 completeness check on a real clip cut at every interesting length."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edged.media.mp4boxes import looks_like_mp4, mp4_incomplete_reason
from edged.media.samples import make_clip


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path: Path = make_clip(tmp_path_factory.mktemp("mp4") / "c.mp4", seconds=1)
    return path.read_bytes()


def test_complete_file_passes(clip_bytes: bytes) -> None:
    assert looks_like_mp4(clip_bytes[:8])
    assert mp4_incomplete_reason(io.BytesIO(clip_bytes), len(clip_bytes)) is None


def test_every_truncation_is_caught(clip_bytes: bytes) -> None:
    for cut in range(8, len(clip_bytes), 97):
        data = clip_bytes[:cut]
        assert mp4_incomplete_reason(io.BytesIO(data), len(data)) is not None, cut


def test_mdat_without_size_is_still_being_written() -> None:
    data = b"\0\0\0\x10ftypisom\0\0\0\0" + b"\0\0\0\0mdat" + b"x" * 100
    reason = mp4_incomplete_reason(io.BytesIO(data), len(data), settled=False)
    assert reason is not None and "still being written" in reason
    # Settled, it extends to the end of the file; but with no index it is no recording.
    reason = mp4_incomplete_reason(io.BytesIO(data), len(data), settled=True)
    assert reason is not None and "no moov" in reason


def test_a_last_box_of_size_zero_extends_to_the_end_once_settled(clip_bytes: bytes) -> None:
    """ISO/IEC 14496-12 4.2: size 0 means "to the end of the file". A complete recording
    followed by such a box (the padding of bench/upload_rss.py's sample, zeros) is complete
    once the file has settled, and not before (a recorder's mdat while it records)."""
    padded = clip_bytes + b"\0" * 4096
    assert mp4_incomplete_reason(io.BytesIO(padded), len(padded), settled=True) is None
    reason = mp4_incomplete_reason(io.BytesIO(padded), len(padded), settled=False)
    assert reason is not None and "settles" in reason
    free = clip_bytes + b"\0\0\0\0free" + b"x" * 100
    assert mp4_incomplete_reason(io.BytesIO(free), len(free)) is None


def test_not_mp4_is_recognised() -> None:
    assert not looks_like_mp4(b"\x1aE\xdf\xa3 matroska")
