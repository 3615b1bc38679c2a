"""Prometheus metrics, read from the ledger: they survive restarts and need no hooks in stages.

A refresh stage reads the ledger every few seconds on the ledger's thread into a snapshot
and feeds the latency histograms with the clips finished since the last refresh; the
/metrics handler only formats that snapshot.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edged.ledger import reports
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.upload.api_codes import PauseReason

_CODE = re.compile(r"HTTP (\d{3})|code=(\w+)")
_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_STEP_NAMES = ("queued_to_upload_start", "upload", "upload_done_to_callback", "callback_to_done")
_COLUMNS = [column for column, _ in reports.CLIP_STEPS]
#: (name, from column, to column) of each step of a clip's life, for the latency histograms.
STEPS = tuple(
    (name, start, end)
    for name, (start, end) in zip(_STEP_NAMES, itertools.pairwise(_COLUMNS), strict=True)
)


@dataclass
class Snapshot:
    clips: dict[tuple[str, str], int] = field(default_factory=dict)  # (camera, state) → n
    oldest_pending_age_s: float = 0.0
    uploaded_bytes: int = 0
    uploads_accepted: int = 0
    duplicate_uploads: int = 0
    uploads_interrupted: int = 0
    api_errors: dict[str, int] = field(default_factory=dict)
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)  # (sink, state) → n
    cameras_down: dict[str, int] = field(default_factory=dict)
    outage_seconds: dict[str, float] = field(default_factory=dict)
    tokens_today: int = 0
    recorded_seconds_today: float = 0.0
    uploaded_seconds_today: float = 0.0
    storage_bytes: int = 0
    uploads_paused: str | None = None  # the reason, while uploads are paused
    results_without_verdict: int = 0


def read_snapshot(ledger: Ledger, now: float) -> Snapshot:
    """Blocking, reads only (the ledger's thread); the API's error codes are counted apart,
    off that thread (`api_error_counts`)."""
    snap = Snapshot(clips=ledger.reports.clip_counts())
    oldest = ledger.reports.oldest_pending_at()
    if oldest is not None:
        snap.oldest_pending_age_s = max(0.0, now - oldest)
    uploads = ledger.reports.upload_totals()
    snap.uploaded_bytes = uploads.bytes
    snap.uploads_accepted = uploads.accepted
    snap.duplicate_uploads = uploads.duplicates
    snap.uploads_interrupted = uploads.interrupted
    snap.alerts = ledger.reports.alert_counts()
    for camera, outage in ledger.reports.outage_totals(now).items():
        snap.outage_seconds[camera] = outage.seconds
        snap.cameras_down[camera] = 1 if outage.down else 0
    snap.tokens_today = ledger.reports.tokens(now).today
    footage = ledger.reports.footage_today(now)
    snap.recorded_seconds_today = footage.recorded_s
    snap.uploaded_seconds_today = footage.uploaded_s
    pause = ledger.meta.pause()
    snap.uploads_paused = str(pause.get("reason")) if pause is not None else None
    snap.results_without_verdict = ledger.verdicts.total()
    return snap


def api_error_counts(details: list[str]) -> dict[str, int]:
    """Code → retries and failures that name it, from the details of those events."""
    counts: dict[str, int] = {}
    for detail in details:
        match = _CODE.search(detail)
        if match:
            code = match.group(1) or match.group(2)
            counts[code] = counts.get(code, 0) + 1
    return counts


_STEP_OF_COLUMNS = {(start, end): name for name, start, end in STEPS}


def directory_bytes(path: Path) -> int:
    """Blocking: bytes used by the files under `path`."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


class LedgerCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snap = self.snapshot
        clips = GaugeMetricFamily("edged_clips", "Clips in the ledger", labels=["camera", "state"])
        for (camera, state), n in sorted(snap.clips.items()):
            clips.add_metric([camera, state], n)
        yield clips
        yield GaugeMetricFamily(
            "edged_queue_oldest_age_seconds",
            "Age of the oldest clip not yet done",
            snap.oldest_pending_age_s,
        )
        yield CounterMetricFamily(
            "edged_upload_bytes", "Bytes of clips uploaded", snap.uploaded_bytes
        )
        yield CounterMetricFamily(
            "edged_uploads_accepted", "Uploads the API accepted", snap.uploads_accepted
        )
        yield CounterMetricFamily(
            "edged_duplicate_uploads",
            "Uploads the API accepted of a clip it had accepted before (a clip resubmitted"
            " because its result never came counts too)",
            snap.duplicate_uploads,
        )
        yield CounterMetricFamily(
            "edged_uploads_interrupted",
            "Uploads cut off by a crash or a stop; the API may have accepted them, so the"
            " clip's next upload may be a duplicate",
            snap.uploads_interrupted,
        )
        errors = CounterMetricFamily("edged_api_errors", "API errors", labels=["code"])
        for code, n in sorted(snap.api_errors.items()):
            errors.add_metric([code], n)
        yield errors
        alerts = GaugeMetricFamily(
            "edged_alerts", "Alerts by sink and outcome", labels=["sink", "outcome"]
        )
        for (sink, state), n in sorted(snap.alerts.items()):
            alerts.add_metric([sink, state], n)
        yield alerts
        down = GaugeMetricFamily(
            "edged_camera_down", "1 while a camera is in an outage", labels=["camera"]
        )
        outage = CounterMetricFamily(
            "edged_camera_outage_seconds", "Seconds of camera outages", labels=["camera"]
        )
        for camera in sorted(snap.outage_seconds):
            down.add_metric([camera], snap.cameras_down.get(camera, 0))
            outage.add_metric([camera], snap.outage_seconds[camera])
        yield down
        yield outage
        yield GaugeMetricFamily(
            "edged_tokens_today", "API tokens used today (UTC)", snap.tokens_today
        )
        yield GaugeMetricFamily(
            "edged_recorded_seconds_today",
            "Seconds of video in the clips found today (UTC)",
            snap.recorded_seconds_today,
        )
        yield GaugeMetricFamily(
            "edged_uploaded_seconds_today",
            "Seconds of video in the clips the service accepted today (UTC)",
            snap.uploaded_seconds_today,
        )
        yield GaugeMetricFamily(
            "edged_storage_bytes", "Bytes of edged's own clips on disk", snap.storage_bytes
        )
        yield CounterMetricFamily(
            "edged_results_without_verdict",
            "Results without a valid verdict block (missing, invalid or contradictory); their"
            " persons were read from the prose and do not alert at the default min_confidence",
            snap.results_without_verdict,
        )
        paused = GaugeMetricFamily(
            "edged_uploads_paused",
            "1 while every upload waits (refused key, no credit, no permission)",
            labels=["reason"],
        )
        for reason in PauseReason:
            paused.add_metric([reason.value], 1 if snap.uploads_paused == reason.value else 0)
        yield paused


class Metrics:
    """Owns a registry (no global state) and the refresh stage."""

    def __init__(
        self,
        db: AsyncLedger,
        storage_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        every_s: float = 5.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self._collector = LedgerCollector()
        self.registry.register(self._collector)
        self._latency = Histogram(
            "edged_clip_step_seconds",
            "Time of each step of a clip",
            ["step"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # Counted as they happen on the public listener (not in the ledger: a flood of
        # requests must not become a flood of writes).
        self.callbacks_rejected = Counter(
            "edged_callbacks_rejected",
            "Requests the public callback listener turned away",
            ["reason"],
            registry=self.registry,
        )
        self.listener_closed = Counter(
            "edged_listener_connections_closed",
            "Connections the public listener closed: no request head in time (head_timeout),"
            " closed for a newer one at the connection cap (evicted), refused at the cap",
            ["reason"],
            registry=self.registry,
        )
        self._db = db
        self._clips_dir = storage_dir / "clips"
        self._clock = clock
        self._every_s = every_s
        self._last_done = clock()

    async def refresh(self) -> None:
        now = self._clock()
        ledger = self._db.ledger
        snapshot = await self._db.call(read_snapshot, ledger, now)
        details = await self._db.call(ledger.reports.failure_details)
        snapshot.api_errors = await asyncio.to_thread(api_error_counts, details)
        snapshot.storage_bytes = await asyncio.to_thread(directory_bytes, self._clips_dir)
        for start, end, seconds in await self._db.call(
            ledger.reports.finished_steps, self._last_done
        ):
            self._latency.labels(_STEP_OF_COLUMNS[start, end]).observe(seconds)
        self._last_done = now
        self._collector.snapshot = snapshot

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._every_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
