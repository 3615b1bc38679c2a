"""`edged status`: what the ledger says, read on its own connection, safe while the daemon runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edged.clip import ClipState
from edged.ledger.reports import Footage
from edged.ledger.store import Ledger
from edged.ledger.verdict_stats import NoVerdict
from edged.printable import printable


@dataclass(frozen=True, slots=True)
class CameraLine:
    camera: str
    by_state: dict[str, int]
    last_found_at: float | None


@dataclass(frozen=True, slots=True)
class OutageLine:
    """A time a camera sent no footage (RTSP cameras), from the ledger's outage record."""

    camera: str
    started_at: float
    ended_at: float | None  # None: still down
    reason: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    by_state: dict[str, int]
    cameras: list[CameraLine]
    oldest_pending_at: float | None
    last_errors: list[tuple[int, str, str]]  # clip id, camera, error
    alerts: dict[str, int] = field(default_factory=dict)
    tokens_total: int = 0
    tokens_today: int = 0
    outages: list[OutageLine] = field(default_factory=list)
    paused: dict[str, Any] | None = None  # {reason, message, since} while uploads wait
    without_verdict: int = 0
    recent_without_verdict: list[NoVerdict] = field(default_factory=list)
    footage: Footage | None = None


def build_report(ledger: Ledger, error_count: int = 5) -> StatusReport:
    counts = ledger.reports.clip_counts()
    by_state: dict[str, int] = {}
    cameras: dict[str, dict[str, int]] = {}
    for (camera, state), n in counts.items():
        by_state[state] = by_state.get(state, 0) + n
        cameras.setdefault(camera, {})[state] = n
    last_found = ledger.reports.last_clip_at()
    now = time.time()
    tokens = ledger.reports.tokens(now)
    return StatusReport(
        by_state=by_state,
        cameras=[
            CameraLine(name, states, last_found.get(name))
            for name, states in sorted(cameras.items())
        ],
        oldest_pending_at=ledger.reports.oldest_pending_at(),
        last_errors=[
            (error.clip_id, error.camera, error.error)
            for error in ledger.reports.recent_errors(error_count)
        ],
        alerts=ledger.outbox.counts_by_state(),
        tokens_total=tokens.total,
        tokens_today=tokens.today,
        outages=[
            OutageLine(outage.camera, outage.started_at, outage.ended_at, outage.reason)
            for outage in ledger.outages.recent_outages()
        ],
        paused=ledger.meta.pause(),
        without_verdict=ledger.verdicts.total(),
        recent_without_verdict=ledger.verdicts.recent(),
        footage=ledger.reports.footage_today(now),
    )


def _age(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "-"
    seconds = max(0, int(now - epoch))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def format_report(report: StatusReport, now: float | None = None) -> str:
    now = time.time() if now is None else now
    order = [state.value for state in ClipState]
    lines = [
        "clips: "
        + (", ".join(f"{s} {report.by_state[s]}" for s in order if s in report.by_state) or "none")
    ]
    lines.append(f"oldest pending clip: {_age(report.oldest_pending_at, now)}")
    if report.paused is not None:
        since = report.paused.get("since")
        lines.append(
            f"UPLOADS PAUSED ({report.paused.get('reason')}) since"
            f" {_age(since if isinstance(since, int | float) else None, now)}:"
            f" {printable(str(report.paused.get('message')))}"
        )
    for camera in report.cameras:
        states = ", ".join(f"{s} {camera.by_state[s]}" for s in order if s in camera.by_state)
        lines.append(
            f"  camera {camera.camera}: {states}; last clip {_age(camera.last_found_at, now)}"
        )
    alerts = ", ".join(f"{k} {v}" for k, v in sorted(report.alerts.items())) or "none"
    lines.append(f"alerts: {alerts}")
    lines.append(f"tokens used: {report.tokens_today} today (UTC), {report.tokens_total} in all")
    if report.footage is not None:
        footage, share = report.footage, report.footage.uploaded_share
        lines.append(
            f"video today (UTC): {footage.recorded_s:.0f} s recorded, {footage.uploaded_s:.0f} s"
            f" uploaded"
            + (f" ({share:.0%})" if share is not None else "")
            + f", {footage.skipped_idle} clips without activity kept back"
        )
        if footage.events:
            per_event = footage.tokens_per_event or 0
            lines.append(f"events today: {footage.events}, {per_event:.0f} tokens per event")
    if report.last_errors:
        lines.append("last errors:")
        lines += [
            f"  clip {i} ({camera}): {printable(error)}" for i, camera, error in report.last_errors
        ]
    if report.without_verdict:
        lines.append(
            f"results without a valid verdict: {report.without_verdict} (persons named only in"
            " prose do not alert at the default min_confidence); latest:"
        )
        for item in report.recent_without_verdict:
            why = f"{item.status}: {item.problem}" if item.problem else item.status
            lines.append(f"  clip {item.clip_id} ({item.camera}): {why}")
            lines += [f"    mentions {mention}" for mention in item.mentions]
    if report.outages:
        lines.append("camera outages (latest first):")
        lines += [_outage(outage, now) for outage in report.outages]
    return "\n".join(lines)


def _outage(outage: OutageLine, now: float) -> str:
    start = datetime.fromtimestamp(outage.started_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if outage.ended_at is None:
        seconds = max(0.0, now - outage.started_at)
        return f"  camera {outage.camera}: DOWN since {start} ({seconds:.0f}s): {outage.reason}"
    end = datetime.fromtimestamp(outage.ended_at, UTC).strftime("%H:%M:%SZ")
    seconds = max(0.0, outage.ended_at - outage.started_at)
    return f"  camera {outage.camera}: {start} to {end} ({seconds:.0f}s): {outage.reason}"
