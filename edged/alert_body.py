"""What an alert says: the body every sink sends, fixed when the alert is created.

The outbox stores the body as JSON text and keeps those exact bytes, because a webhook
signature is over them; `AlertBody.from_json` reads that text once, when the alert is read
back, and the sinks take their fields from it. A sink that replaces the snapshot reference
(with a link, inline data or a topic) renders the body again with `rendered`, which writes
the same JSON as the stored text apart from that one entry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stored picture of an alert, as the alert's body names it."""

    file: str  # relative to the snapshot store: "<camera>/<alert_id>.jpg"
    width: int
    height: int
    at_s: float  # where in the clip the frame is

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: object) -> Snapshot | None:
        """The body's `snapshot` entry, or None when there is none (or it is malformed)."""
        if not isinstance(value, dict):
            return None
        try:
            file, width, height = str(value["file"]), int(value["width"]), int(value["height"])
            return cls(file, width, height, float(value["at_s"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class ClipRef:
    """The clip an alert is about, as receivers see it (times in ISO 8601 UTC)."""

    id: int
    start: str
    end: str | None
    duration_s: float | None
    file: str
    path: str


@dataclass(frozen=True, slots=True)
class AlertBody:
    alert_id: str
    person: str
    confidence: float
    camera: str
    clip: ClipRef | None
    moment_s: float | None  # seconds into the clip
    timestamps: tuple[float, ...]
    seen_at: str | None  # ISO 8601 UTC
    summary: str
    title: str | None
    threat_level: int | None
    snapshot: Snapshot | None  # sinks render this reference their own way
    instance: str | None
    created_at: str | None  # ISO 8601 UTC

    def as_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "person": self.person,
            "confidence": self.confidence,
            "camera": self.camera,
            "clip": asdict(self.clip) if self.clip is not None else None,
            "moment_s": self.moment_s,
            "timestamps": list(self.timestamps),
            "seen_at": self.seen_at,
            "summary": self.summary,
            "title": self.title,
            "threat_level": self.threat_level,
            "snapshot": self.snapshot.as_json() if self.snapshot is not None else None,
            "instance": self.instance,
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        """The text the outbox stores."""
        return json.dumps(self.as_json(), sort_keys=True)

    def rendered(self, snapshot: dict[str, Any] | None) -> str:
        """The body as a sink sends it, with `snapshot` in place of the stored reference."""
        return json.dumps({**self.as_json(), "snapshot": snapshot}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AlertBody:
        """Raises ValueError when the text is not a JSON object; a missing entry reads as
        empty."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"an alert body is a JSON object, not {type(data).__name__}")
        clip = data.get("clip")
        return cls(
            alert_id=data.get("alert_id") or "",
            person=data.get("person") or "",
            confidence=data.get("confidence") or 0.0,
            camera=data.get("camera") or "",
            clip=_clip(clip) if isinstance(clip, dict) else None,
            moment_s=data.get("moment_s"),
            timestamps=tuple(data.get("timestamps") or ()),
            seen_at=data.get("seen_at"),
            summary=data.get("summary") or "",
            title=data.get("title"),
            threat_level=data.get("threat_level"),
            snapshot=Snapshot.from_json(data.get("snapshot")),
            instance=data.get("instance"),
            created_at=data.get("created_at"),
        )


def _clip(data: dict[str, Any]) -> ClipRef:
    return ClipRef(
        id=data.get("id") or 0,
        start=data.get("start") or "",
        end=data.get("end"),
        duration_s=data.get("duration_s"),
        file=data.get("file") or "",
        path=data.get("path") or "",
    )
