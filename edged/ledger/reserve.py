"""Room for the ledger when the disk is full.

The ledger shares storage.dir with edged's clips, and any program may fill that disk. SQLite
answers a commit it has no block for with SQLITE_FULL and rolls it back; edged must not stop
for that (the promises need the ledger most when space is short). So:

- a reserve file beside the ledger (`ledger.reserve`, 4 MiB) is given up at the first full
  commit: room for thousands of transitions, among them the drops by which the storage
  quota frees space;
- a call that still finds the disk full waits and is tried again (AsyncLedger), logged;
- the storage quota makes the reserve on start, and puts it back once the disk has room
  for it above storage.min_free.

Blocking functions: call them on the ledger's thread or another thread, never the loop.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

RESERVE_FILE = "ledger.reserve"
RESERVE_BYTES = 4 * 1024 * 1024


def is_disk_full(exc: BaseException) -> bool:
    return (
        isinstance(exc, sqlite3.OperationalError)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )


def release_reserve(storage_dir: Path) -> bool:
    """Give the reserve's blocks back to the filesystem; False when it was already gone."""
    try:
        (storage_dir / RESERVE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def restore_reserve(storage_dir: Path, min_free: int) -> bool:
    """Make the reserve if it is missing and the disk keeps `min_free` besides it; True when
    it was made now."""
    path = storage_dir / RESERVE_FILE
    if path.exists():
        return False
    stat = os.statvfs(storage_dir)
    if stat.f_bavail * stat.f_frsize < RESERVE_BYTES + min_free:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)  # real blocks, not a sparse file
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    return True
