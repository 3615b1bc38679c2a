"""Where RTSP clips live on disk and how a finished one is made durable.

    storage.dir/clips/<camera>/<YYYY-MM-DD>/<HHMMSS>.mp4   (UTC; `-2`, `-3`… on a clash)

A clip is written as `<name>.mp4.part` (fragmented MP4, playable up to its last fragment at
any moment), then fsynced, renamed to `<name>.mp4` and its folder fsynced, and only then put
in the ledger. Everything here is blocking: call it from a thread.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

CLIPS_DIR = "clips"
PART = ".part"
#: A recovery in progress writes here; a crash during recovery leaves it for the next start.
RECOVERING = ".recover.part"
SOURCE_KEY_PREFIX = "rtsp:"


def clips_root(storage_dir: Path) -> Path:
    return storage_dir / CLIPS_DIR


def new_clip_path(camera_dir: Path, start: datetime) -> Path:
    """The final path of a clip starting at `start` (UTC), unused by any clip or part."""
    folder = camera_dir / start.strftime("%Y-%m-%d")
    stem = start.strftime("%H%M%S")
    candidate = folder / f"{stem}.mp4"
    number = 1
    while candidate.exists() or part_of(candidate).exists():
        number += 1
        candidate = folder / f"{stem}-{number}.mp4"
    return candidate


def part_of(final: Path) -> Path:
    return final.with_name(final.name + PART)


def final_of(part: Path) -> Path:
    return part.with_name(part.name.removesuffix(PART))


def source_key(storage_dir: Path, final: Path) -> str:
    """The clip's identity in the ledger: its path under clips/, stable across restarts."""
    return SOURCE_KEY_PREFIX + final.relative_to(clips_root(storage_dir)).as_posix()


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(part: Path) -> Path:
    """`.part` → final name, durably: data first, then the rename, then the folder entry."""
    final = final_of(part)
    fsync_file(part)
    os.replace(part, final)
    fsync_dir(final.parent)
    return final


def make_dirs(folder: Path) -> None:
    """mkdir -p, with every new folder's entry made durable in its parent."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)


def list_camera_files(camera_dir: Path) -> tuple[list[Path], list[Path]]:
    """(parts, finished clips) under one camera's folder, oldest first by name."""
    parts: list[Path] = []
    finished: list[Path] = []
    if not camera_dir.is_dir():
        return parts, finished
    for day in sorted(p for p in camera_dir.iterdir() if p.is_dir()):
        for path in sorted(day.iterdir()):
            if path.name.endswith(RECOVERING):
                path.unlink(missing_ok=True)  # an interrupted recovery: redone from its part
            elif path.name.endswith(".mp4" + PART):
                parts.append(path)
            elif path.name.endswith(".mp4"):
                finished.append(path)
    return parts, finished
