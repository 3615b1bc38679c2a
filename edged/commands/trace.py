"""`edged status --clip ID`: one clip's life, step by step, from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from edged.ledger import reports
from edged.ledger.store import Ledger
from edged.printable import printable


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _spans(seconds: tuple[int, ...]) -> str:
    """(3, 4, 5, 9) → "3-5 s, 9 s": the active seconds from the clip's start."""
    spans: list[list[int]] = []
    for second in seconds:
        if spans and second == spans[-1][1] + 1:
            spans[-1][1] = second
        else:
            spans.append([second, second])
    return ", ".join(f"{a}-{b} s" if a != b else f"{a} s" for a, b in spans)


def clip_trace(ledger: Ledger, clip_id: int) -> str | None:
    """Blocking. The timings of the clip's last attempt, its alerts and its events."""
    clip, times = ledger.clips.get(clip_id), ledger.results.timings(clip_id)
    if clip is None or times is None:
        return None
    lines = [
        f"clip {clip.id} camera {clip.camera}: {clip.state}, attempt {clip.attempts}",
        f"  file {clip.path} ({clip.size} bytes, {clip.duration_s or 0:.1f}s)",
    ]
    if clip.start is not None:
        lines.append(f"  recorded from {clip.start.isoformat()}")
    activity = ledger.activity.of(clip_id)
    if activity is not None:
        active = _spans(activity.active) or "none"
        lines.append(
            f"  activity: {activity.active_seconds} of {activity.seconds:.0f} seconds ({active}),"
            f" peak score {activity.peak_score:.1f}, peak area {activity.peak_area * 100:.2f}%,"
            f" {activity.samples} frames compared"
        )
    previous: float | None = None
    for column, label in reports.CLIP_STEPS:
        moment = times.at(column)
        if moment is None:
            continue
        step = f" (+{moment - previous:.3f}s)" if previous is not None else ""
        lines.append(f"  {label:16} {_when(moment)}{step}")
        previous = moment
    for alert in ledger.reports.clip_alerts(clip_id):
        sent = alert.sent_at
        after = f" (+{sent - alert.created_at:.3f}s after the alert was made)" if sent else ""
        at = _when(sent) if sent else "-"
        lines.append(f"  alert {alert.person} → {alert.sink}: {alert.state} {at}{after}")
    if clip.last_error:
        lines.append(f"  last error: {printable(clip.last_error)}")
    lines.append("  events:")
    for event in ledger.reports.clip_events(clip_id):
        detail = f": {printable(event.detail)}" if event.detail else ""
        lines.append(f"    {_when(event.at)} {event.kind}{detail}")
    return "\n".join(lines)
