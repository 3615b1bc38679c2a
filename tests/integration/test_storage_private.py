"""storage.dir is private to edged's user and group whatever the umask edged is started with:
a real `edged run` under umask 022 (outside the systemd unit, whose UMask=0027 would hide the
fault) leaves nothing there that other users may read."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from edged.emulator import Emulator
from edged.media.samples import make_clip
from tests.support.edged import write_config
from tests.support.edged_process import running


def _open_to_others(root: Path) -> list[str]:
    found = []
    for path in (root, *root.rglob("*")):
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o007:
            found.append(f"{path.relative_to(root)} {stat.filemode(mode)}")
    return found


async def test_storage_dir_and_all_edged_writes_there_are_private_under_umask_022(
    emulator: Emulator, tmp_path: Path
):
    folder = tmp_path / "nvr"
    folder.mkdir()
    state = tmp_path / "state"
    state.mkdir(mode=0o755)  # made by an earlier run under umask 022
    state.chmod(0o755)
    (state / "left-over").write_text("")
    (state / "left-over").chmod(0o644)
    extra = (
        "persons:\n  - {name: Alice, url: https://example.com/alice.jpg}\n"
        f"cameras:\n  - {{name: gate, folder: {folder}, settle: 0.5s, since: 1h}}\n"
        "alerts:\n  cooldown: 0s\n  sinks:\n    - type: log\n"
    )
    config = write_config(tmp_path, emulator.url, extra=extra)
    config.chmod(0o600)
    umask = ["sh", "-c", 'umask 022 && exec "$@"', "sh"]
    async with running(config, serving=False, wrapper=umask) as edged:
        part = folder / "alice.mp4.part"
        await asyncio.to_thread(make_clip, part, seconds=1, title="Alice")
        part.rename(folder / "alice.mp4")

        def snapshot_written() -> bool:
            return any((state / "snapshots").rglob("*.jpg"))

        await edged.until(snapshot_written, "an alert with its snapshot", timeout_s=40)
        assert (state / "ledger.sqlite3").exists()
        open_now = await asyncio.to_thread(_open_to_others, state)
    assert open_now == []
    assert await asyncio.to_thread(_open_to_others, state) == []
