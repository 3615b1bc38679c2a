"""Promise: edged never writes, moves or deletes files inside an NVR folder. A daemon with every
part that could touch files switched on (snapshots, a storage quota far below the clips' size,
clips kept for no time) takes recordings to done; the NVR folder is byte for byte, name for
name and mtime for mtime what the NVR left."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from edged.emulator import Emulator
from edged.ledger.store import Ledger
from edged.media.samples import make_clip
from tests.support.edged import daemon_config, edged_running
from tests.support.ledger import all_sent, clip_states
from tests.support.waiting import until
from tests.support.webhook import Receiver

Tree = dict[str, tuple[int, int, int, str]]


def tree(root: Path) -> Tree:
    """Every entry under root: (mode, size, mtime in ns, sha256 of a file's bytes)."""
    entries: Tree = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        entries[str(path.relative_to(root))] = (
            info.st_mode,
            info.st_size,
            info.st_mtime_ns,
            digest,
        )
    return entries


async def test_an_nvr_folder_is_never_changed(
    emulator: Emulator, receiver: Receiver, tmp_path: Path
) -> None:
    nvr = tmp_path / "nvr"
    (nvr / "2026-12-01").mkdir(parents=True)
    titles = ("Alice at the gate", "Bob in the yard", "An empty yard")
    for index, title in enumerate(titles):
        await asyncio.to_thread(
            make_clip, nvr / "2026-12-01" / f"{index}.mp4", seconds=1, title=title
        )
    before = await asyncio.to_thread(tree, nvr)

    config = daemon_config(tmp_path, emulator.url, receiver.url)
    text = await asyncio.to_thread(config.read_text)
    text = text.replace(
        f"storage:\n  dir: {tmp_path / 'state'}\n",
        f"storage:\n  dir: {tmp_path / 'state'}\n  max_bytes: 1KB\n  keep_uploaded: 0s\n",
    )
    text += (
        f"cameras:\n  - name: yard\n    folder: {nvr}\n    settle: 0.5s\n    since: 1h\n"
        "    pattern: '*.mp4'\n"
    )
    await asyncio.to_thread(config.write_text, text)
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    try:
        async with edged_running(config) as daemon:

            async def all_done() -> bool:
                states = await clip_states(ledger)
                return len(states) == len(titles) and set(states.values()) == {"done"}

            await until(all_done, daemon, what="every recording done", timeout_s=60)
            await until(all_sent(ledger, 4), daemon, what="2 alerts x 2 sinks sent")
    finally:
        await asyncio.to_thread(ledger.close)

    assert all(hit.alert["snapshot"] for hit in receiver.delivered), "snapshots were taken"
    assert await asyncio.to_thread(tree, nvr) == before
