"""Snapshots: the frame at the named moment, scaled, stored, served by signed links, pruned.

The clips here are generated so that every frame shows its own number as eight black or
white bands (bit 0 on the left), which survive H.264, scaling and JPEG: a decoded snapshot
tells which frame it is.
"""

from __future__ import annotations

import io
import logging
import os
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import pytest

from edged.clip import Clip, ClipState
from edged.media.frames import MAX_WIDTH, SnapshotError, clip_picture
from edged.media.snapshot_store import Snapshot, SnapshotStore

FPS = 10
BITS = 8
ALERT_ID = "al_" + "0123456789abcdef01234567"


def numbered_clip(
    path: Path, *, seconds: float = 3.0, width: int = 320, height: int = 240, first_pts: int = 0
) -> Path:
    """An H.264 MP4 whose frame n (at n / FPS seconds) shows n in binary."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.options = {"preset": "ultrafast", "crf": "18"}
        stream.codec_context.gop_size = FPS  # a keyframe a second: seeks land before the moment
        band = width // BITS
        for index in range(round(seconds * FPS)):
            frame = av.VideoFrame(width, height, "yuv420p")
            luma, *chroma = frame.planes
            row = bytearray(luma.line_size)
            for bit in range(BITS):
                value = 235 if index >> bit & 1 else 16
                row[bit * band : (bit + 1) * band] = bytes([value]) * band
            luma.update(bytes(row) * height)
            for plane in chroma:
                plane.update(bytes([128]) * plane.buffer_size)
            frame.pts = first_pts + index
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def frame_number(jpeg: bytes) -> int:
    """The number a numbered frame shows, read back from a JPEG snapshot."""
    with av.open(io.BytesIO(jpeg)) as container:
        frame = next(container.decode(video=0)).reformat(format="gray")
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    band = frame.width // BITS
    middle_row = frame.height // 2 * stride
    number = 0
    for bit in range(BITS):
        if data[middle_row + bit * band + band // 2] > 128:
            number |= 1 << bit
    return number


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    return numbered_clip(tmp_path / "numbered.mp4")


@pytest.mark.parametrize(
    ("moment", "frame"),
    [(0.0, 0), (0.1, 1), (1.25, 12), (2.0, 20), (2.34, 23), (2.9, 29)],
)
def test_the_frame_taken_is_the_one_on_screen_at_the_moment(
    clip_path: Path, moment: float, frame: int
) -> None:
    picture = clip_picture(clip_path, moment)
    assert frame_number(picture.jpeg) == frame
    assert picture.at_s == pytest.approx(frame / FPS)
    assert picture.jpeg.startswith(b"\xff\xd8\xff")


def test_without_a_moment_the_middle_of_the_clip_is_taken(clip_path: Path) -> None:
    picture = clip_picture(clip_path, None)
    assert frame_number(picture.jpeg) == 15
    assert picture.at_s == pytest.approx(1.5)


def test_a_moment_past_the_end_takes_the_last_frame(clip_path: Path) -> None:
    assert frame_number(clip_picture(clip_path, 10.0).jpeg) == 29


def test_moments_count_from_the_first_frame_whatever_its_timestamp(tmp_path: Path) -> None:
    # NVR and RTSP recordings often start at a large timestamp rather than at zero.
    path = numbered_clip(tmp_path / "late.mp4", first_pts=500)
    assert frame_number(clip_picture(path, 1.0).jpeg) == 10
    assert frame_number(clip_picture(path, None).jpeg) == 15


def test_wide_frames_are_scaled_to_at_most_1280_pixels(tmp_path: Path) -> None:
    wide = numbered_clip(tmp_path / "wide.mp4", seconds=1.0, width=1920, height=1080)
    picture = clip_picture(wide, 0.5)
    assert (picture.width, picture.height) == (MAX_WIDTH, 720)
    with av.open(io.BytesIO(picture.jpeg)) as container:
        decoded = next(container.decode(video=0))
    assert (decoded.width, decoded.height) == (1280, 720)
    assert frame_number(picture.jpeg) == 5


def test_small_frames_keep_their_size(clip_path: Path) -> None:
    picture = clip_picture(clip_path, 1.0)
    assert (picture.width, picture.height) == (320, 240)


def test_a_file_that_is_not_a_video_raises_snapshot_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SnapshotError, match=r"junk\.mp4"):
        clip_picture(junk, 1.0)
    with pytest.raises(SnapshotError):
        clip_picture(tmp_path / "missing.mp4", 1.0)


# ---- the store --------------------------------------------------------------------------


def _clip(path: Path, camera: str = "porch") -> Clip:
    return Clip(
        id=7,
        camera=camera,
        path=path,
        size=path.stat().st_size if path.exists() else 0,
        state=ClipState.ANALYZED,
        attempts=1,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        duration_s=3.0,
        callback_token=None,
        task_id=None,
        last_error=None,
        next_attempt_at=None,
        found_at=0.0,
    )


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(
        tmp_path / "state" / "snapshots",
        3600.0,
        key=b"k" * 32,
        public_url="https://edge.example.com",
    )


def test_a_snapshot_is_stored_in_edged_storage_per_camera(
    store: SnapshotStore, clip_path: Path
) -> None:
    snapshot = store.take(_clip(clip_path), ALERT_ID, 2.0)
    assert snapshot == Snapshot(f"porch/{ALERT_ID}.jpg", 320, 240, 2.0)
    stored = store.root / "porch" / f"{ALERT_ID}.jpg"
    assert store.path(snapshot.file) == stored
    assert frame_number(stored.read_bytes()) == 20
    assert [p.name for p in clip_path.parent.iterdir() if p.suffix == ".jpg"] == []
    assert Snapshot.from_json(snapshot.as_json()) == snapshot


def test_a_clip_that_cannot_be_decoded_gives_no_snapshot_and_a_log_line(
    store: SnapshotStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert store.take(_clip(tmp_path / "gone.mp4"), ALERT_ID, 1.0) is None
    assert "no snapshot camera=porch clip=7" in caplog.text
    assert not store.root.exists() or not any(store.root.rglob("*.jpg"))


def test_retention_zero_takes_no_snapshots(tmp_path: Path, clip_path: Path) -> None:
    off = SnapshotStore(tmp_path / "snaps", 0.0)
    assert not off.enabled and off.take(_clip(clip_path), ALERT_ID, 1.0) is None


def test_only_snapshot_names_map_to_files(store: SnapshotStore) -> None:
    for bad in ("../ledger.sqlite3", "porch/../../x.jpg", "porch/secret.jpg", f"{ALERT_ID}.jpg"):
        assert store.path(bad) is None, bad
    assert store.read(f"porch/{ALERT_ID}.jpg") is None  # a valid name, not stored (yet)


def test_signed_links_verify_until_they_expire(store: SnapshotStore, clip_path: Path) -> None:
    snapshot = store.take(_clip(clip_path), ALERT_ID, 1.0)
    assert snapshot is not None
    url, expires = store.url(snapshot.file, now=1000.0)
    assert expires == 1000.0 + 3600
    assert url.startswith(f"https://edge.example.com/snapshots/porch/{ALERT_ID}.jpg?expires=4600&")
    signature = url.rsplit("sig=", 1)[1]
    assert store.verify(snapshot.file, "4600", signature, now=2000.0) == store.path(snapshot.file)
    assert store.verify(snapshot.file, "4600", signature, now=4601.0) is None  # expired
    assert store.verify(snapshot.file, "9999", signature, now=2000.0) is None  # other expiry
    assert store.verify(snapshot.file, "4600", "0" * 32, now=2000.0) is None  # forged
    other = SnapshotStore(store.root, 3600.0, key=b"x" * 32)
    assert other.verify(snapshot.file, "4600", signature, now=2000.0) is None  # other key


def test_prune_removes_snapshots_older_than_the_retention(
    store: SnapshotStore, clip_path: Path
) -> None:
    old = store.take(_clip(clip_path, camera="yard"), ALERT_ID, 1.0)
    new_id = "al_" + "f" * 24
    new = store.take(_clip(clip_path), new_id, 1.0)
    assert old is not None and new is not None
    now = store.root.joinpath(new.file).stat().st_mtime
    os.utime(store.root / old.file, (now - 7200, now - 7200))
    assert store.prune(now) == 1
    assert store.read(old.file) is None and store.read(new.file) is not None
