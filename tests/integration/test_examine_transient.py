"""A recording that cannot be opened for a reason that is not the file's (edged out of file
descriptors) is looked at again, never judged: with a real EMFILE, not a mock."""

from __future__ import annotations

import asyncio
import os
import resource
from pathlib import Path

from edged.config.model import FolderCamera
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.samples import make_clip
from edged.sources.recordings import Naming, Verdict, examine


def _exhaust_descriptors() -> tuple[int, int]:
    """Lower the soft limit to the lowest free descriptor: the next open fails with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)  # the kernel hands out the lowest free number
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    return soft, hard


async def test_out_of_file_descriptors_is_tried_again_not_rejected(tmp_path: Path):
    folder = tmp_path / "nvr"
    await asyncio.to_thread(make_clip, folder / "gate-001.mp4", seconds=1.0)
    camera = FolderCamera.model_validate({"name": "gate", "folder": str(folder)})
    db = AsyncLedger(Ledger(tmp_path / "state"))
    naming = Naming.of(camera)
    path = str(folder / "gate-001.mp4")
    try:
        await db.call(db.ledger.clips.in_state)  # the ledger's thread and files are up first
        await asyncio.to_thread(lambda: None)  # and a worker thread
        limits = _exhaust_descriptors()
        try:
            starved = await examine(db, naming, path)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        assert starved.verdict is Verdict.CHANGING, starved
        assert "open files" in (starved.reason or "")
        again = await examine(db, naming, path)
        assert again.verdict is Verdict.QUEUED, again
    finally:
        await db.aclose()
