"""For the NVR fault battery: the clips of an `edged run` (an `EdgedProcess`) by file name,
giving it the right API key, and which uploads the emulator accepted.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edged.emulator import Emulator
from tests.support.edged_process import EdgedProcess


async def by_name(daemon: EdgedProcess) -> dict[str, list[dict[str, Any]]]:
    """The ledger's clips by file name (a name may have more than one)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for clip in await daemon.clips():
        found.setdefault(Path(clip["path"]).name, []).append(clip)
    return found


def states(daemon: EdgedProcess, wanted: dict[str, str]) -> Callable[[], Awaitable[bool]]:
    """Each named file has exactly one clip, in the given state."""

    async def check() -> bool:
        found = await by_name(daemon)
        return all(
            [c["state"] for c in found.get(name, [])] == [state] for name, state in wanted.items()
        )

    return check


async def resume_uploads(daemon: EdgedProcess) -> None:
    """Give edged the key the emulator accepts (SIGHUP): paused uploads resume."""
    text = await asyncio.to_thread(daemon.config.read_text)
    await asyncio.to_thread(daemon.config.write_text, text.replace("wrong-key", RIGHT_KEY))
    daemon.send_signal(signal.SIGHUP)


def accepted(emulator: Emulator) -> Counter[str]:
    """SHA-256 of each file the emulator accepted, with how many times it was."""
    return Counter(
        r.file_sha256 for r in emulator.received if r.status == 200 and r.file_sha256 is not None
    )


def accepted_for(emulator: Emulator, clip_id: int) -> list[str | None]:
    marker = f"/callbacks/{clip_id}/"
    return [
        r.file_sha256
        for r in emulator.received
        if r.status == 200 and marker in str(r.req.get("callback", ""))
    ]


RIGHT_KEY = "right-key"
