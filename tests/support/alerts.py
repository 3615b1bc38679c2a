"""The alert policy and analyzed clips of the policy tests, and a sink that records what it
is given.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from edged.alerts.base import SimpleSink
from edged.alerts.policy import AlertPolicy
from edged.clip import Clip, ClipState, NewClip
from edged.ledger.outbox import Alert
from edged.ledger.results import Tokens
from edged.ledger.store import Ledger

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    """Epoch seconds of a wall-clock time, e.g. "2026-01-09 23:00" (a Friday)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def policy(**kwargs: object) -> AlertPolicy:
    values: dict[str, object] = {
        "person_names": ("Alice", "Bob"),
        "min_confidence": 0.5,
        "sink_names": ("log",),
        "instance": "box",
    }
    values.update(kwargs)
    return AlertPolicy(**values)  # type: ignore[arg-type]


def analyzed(ledger: Ledger, text: str, *, camera: str = "porch", start: str | None = None) -> Clip:
    begin = datetime.fromisoformat(start).replace(tzinfo=BERLIN) if start else None
    new = NewClip(camera, Path(f"/nvr/{camera}.mp4"), 10, start=begin, duration_s=60.0)
    clip, _ = ledger.clips.add(new)
    ledger.uploads.take_for_upload(clip.id)
    ledger.uploads.mark_submitted(clip.id, "task")
    ledger.results.record_result(clip.id, task_id="task", text=text, tokens=Tokens(), raw="{}")
    found = ledger.clips.get(clip.id)
    assert found is not None and found.state == ClipState.ANALYZED
    return found


def result(*present: str, unknown: int | None = None, unknown_at: list[float] | None = None) -> str:
    block: dict[str, object] = {
        "persons": [
            {"name": name, "present": name in present, "confidence": 0.9, "timestamps": [12.0]}
            for name in ("Alice", "Bob")
        ]
    }
    if unknown is not None:
        block["unknown_people"] = unknown
        block["unknown_timestamps"] = unknown_at or []
    return f"Someone walks by.\n```json\n{json.dumps(block)}\n```"


class Recorder(SimpleSink):
    """A sink that records what it is given; `sent` is set once `expected` alerts arrived."""

    def __init__(self, expected: int) -> None:
        self.name = "log"
        self.alerts: list[Alert] = []
        self.expected = expected
        self.sent = asyncio.Event()

    async def deliver(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if len(self.alerts) >= self.expected:
            self.sent.set()
