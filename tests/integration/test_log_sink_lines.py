"""The log sink against a real `edged run`: every alert is a line of its own. The repeat filter
(which holds back a camera's repeated warnings) once folded a second ALERT for the same person
within a minute: Alice on two cameras two seconds apart gave one line, both marked sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edged.emulator import Emulator
from edged.media.samples import make_clip
from tests.support.edged import write_config
from tests.support.edged_process import running


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
    async with running(config, serving=False) as edged:
        await edged.until(lambda: edged.log().count("catch-up camera=") == 2, "both catch-ups")
        for name, folder in folders.items():
            part = folder / f"{name}.mp4.part"
            await asyncio.to_thread(make_clip, part, seconds=1, title="Alice")
            part.rename(folder / f"{name}.mp4")

        async def both_sent() -> bool:
            sent = [alert for alert in await edged.table("alerts") if alert["state"] == "sent"]
            return len(sent) == 2

        await edged.until(both_sent, "both alerts sent", timeout_s=40)
    lines = edged.lines("ALERT person=Alice")
    assert sorted(line.split("camera=")[1].split()[0] for line in lines) == ["back", "front"]
