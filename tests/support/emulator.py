"""Reading what the emulator received, and the analysis request the upload tests send."""

from __future__ import annotations

from typing import Any

from edged.emulator import Emulator
from edged.upload.api import AnalysisRequest, Person


def uploads_of(emulator: Emulator, clip_id: int) -> list[Any]:
    """The uploadFile requests whose callback URL names this clip."""
    marker = f"/callbacks/{clip_id}/"
    return [r for r in emulator.received if marker in str(r.req.get("callback", ""))]


REQUEST = AnalysisRequest(
    user_prompt="Describe.",
    system_prompt="Analyst.",
    callback="http://127.0.0.1:9/cb",
    persons=(Person("Alice", "https://example.com/a.jpg"),),
)
