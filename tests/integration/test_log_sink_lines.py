"""The log sink against a real `edged run`: every alert is a line of its own. The repeat filter
(which holds back a camera's repeated warnings) once folded a second ALERT for the same person
within a minute: Alice on two cameras two seconds apart gave one line, both marked sent."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path

from edged.emulator import Emulator
from edged.media.samples import make_clip
from tests.support.edged import EDGED, write_config
from tests.support.waiting import eventually


def _sent(ledger: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM alerts WHERE state='sent'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0  # no tables yet


async def test_alice_on_two_cameras_within_seconds_is_two_alert_lines(
    emulator: Emulator, tmp_path: Path
):
    folders = {name: tmp_path / name for name in ("front", "back")}
    cameras = "".join(
        f"  - {{name: {name}, folder: {folder}, settle: 0.5s, since: 1h}}\n"
        for name, folder in folders.items()
    )
    extra = (
        "persons:\n  - {name: Alice, url: https://example.com/alice.jpg}\n"
        f"cameras:\n{cameras}alerts:\n  cooldown: 0s\n  sinks:\n    - type: log\n"
    )
    config = write_config(tmp_path, emulator.url, extra=extra)
    config.chmod(0o600)
    emulator.options.api_key = None
    for folder in folders.values():
        folder.mkdir()
    log_path = tmp_path / "edged.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *EDGED, "run", "-c", str(config), stdout=log, stderr=log
        )
    try:
        await eventually(lambda: log_path.read_text().count("catch-up camera=") == 2)
        for name, folder in folders.items():
            part = folder / f"{name}.mp4.part"
            await asyncio.to_thread(make_clip, part, seconds=1, title="Alice")
            part.rename(folder / f"{name}.mp4")

        def both_sent() -> bool:
            assert process.returncode is None, log_path.read_text()[-2000:]
            return _sent(tmp_path / "state" / "ledger.sqlite3") == 2

        await eventually(both_sent, what="both alerts sent", timeout_s=40)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 40)
    lines = [line for line in log_path.read_text().splitlines() if "ALERT person=Alice" in line]
    assert sorted(line.split("camera=")[1].split()[0] for line in lines) == ["back", "front"]
