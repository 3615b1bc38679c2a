"""The pipeline, built in one place and run in named phases.

`build_pipeline` makes every stage of `edged run` from the config, in pipeline order:

    sources → activity gate → uploader (and the expirer) → callback listener → analyzer
    → alert delivery

then the upkeep: the storage quota, the metrics, the daily report line and the systemd
watchdog. `Pipeline` runs
them as one task each in the daemon's TaskGroup and stops them in this order, which is the
one that loses nothing: `stop_sources` (no new clips), `finish_uploads` (those in flight
get the grace period), `drain_results` (the results of those uploads are on their way:
the listener and the analyzer stay up for them, or each clip would be uploaded and paid for
again after a restart), `cancel_the_rest`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edged.aio import serving
from edged.alerts.analyzer import Analyzer
from edged.alerts.delivery import AlertDelivery
from edged.config.cameras import Camera, FolderCamera, RtspCamera
from edged.config.listener_role import ListenerRole, listener_role
from edged.config.model import Config, split_host_port
from edged.ledger.thread import AsyncLedger
from edged.results.callback_server import CallbackServer
from edged.results.listener import CallbackApp
from edged.results.rejections import Rejections
from edged.service.daily_report import DailyReport
from edged.service.health import HealthInputs, health_app, ledger_writable
from edged.service.metrics import Metrics
from edged.service.sdnotify import Notifier, Watchdog
from edged.service.storage import StorageQuota
from edged.service.supervisor import Source, SourceSupervisor
from edged.service.wiring import (
    alert_stages,
    analysis_template,
    guardrails,
    listener_limits,
    person_directory,
    upload_settings,
)
from edged.sources.activity_gate import ActivityGate
from edged.sources.folder import FolderSource
from edged.sources.live_activity import LiveFindings
from edged.sources.rtsp import RtspSource
from edged.upload.api import ApiClient
from edged.upload.expirer import Expirer
from edged.upload.uploader import Uploader

log = logging.getLogger(__name__)

#: Requests in flight on /metrics and /healthz when edged stops (aiohttp's own default).
HEALTH_SHUTDOWN_S = 60.0


def make_source(
    db: AsyncLedger,
    camera: Camera,
    on_clip: Callable[[], None],
    config: Config,
    findings: LiveFindings | None = None,
) -> Source:
    match camera:
        case FolderCamera():
            return FolderSource(db, camera, on_clip=on_clip)
        case RtspCamera():
            return RtspSource(db, camera, config.storage.dir, on_clip=on_clip, findings=findings)


@dataclass
class Pipeline:
    config: Config
    db: AsyncLedger
    role: ListenerRole
    # The stages, in pipeline order.
    sources: SourceSupervisor
    gate: ActivityGate
    uploader: Uploader
    expirer: Expirer
    callbacks: CallbackApp
    analyzer: Analyzer
    delivery: AlertDelivery
    # The upkeep.
    quota: StorageQuota
    daily: DailyReport
    metrics: Metrics
    watchdog: Watchdog
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def listen(self, stack: contextlib.AsyncExitStack) -> int:
        """Open the public callback listener (if the config has one) until `stack` closes;
        returns its port (0: none)."""
        if self.role is ListenerRole.NONE:
            return 0
        server = CallbackServer(
            self.callbacks,
            self.config.callback.host,
            self.config.callback.port,
            on_close=lambda r: self.metrics.listener_closed.labels(r).inc(),
        )
        await stack.enter_async_context(server)
        return server.port

    def start(self, group: asyncio.TaskGroup) -> None:
        """One named task per stage, in pipeline order, then the upkeep."""
        stages = {
            "sources": self.sources.run(self.config.cameras),
            "activity": self.gate.run(),
            "uploader": self.uploader.run(),
            "analyzer": self.analyzer.run(),
            "alerts": self.delivery.run(),
            "expirer": self.expirer.run(),
            "metrics": self.metrics.run(),
            "storage": self.quota.run(),
            "daily-report": self.daily.run(),
            "watchdog": self.watchdog.run(),
        }
        self.tasks = {name: group.create_task(run, name=name) for name, run in stages.items()}

    async def serve_health(self, stack: contextlib.AsyncExitStack) -> None:
        """/metrics and /healthz on metrics.listen (if set) until `stack` closes."""
        if self.config.metrics.listen is None:
            return
        inputs = HealthInputs(
            self.tasks, tuple(c.name for c in self.config.cameras), warnings=self.gate.warnings
        )
        host, port = split_host_port(self.config.metrics.listen)
        app = health_app(self.db, self.metrics, inputs)
        await stack.enter_async_context(
            serving(app, host, port, shutdown_timeout_s=HEALTH_SHUTDOWN_S)
        )

    async def stop_sources(self) -> None:
        await self.sources.stop_all()
        self.tasks["sources"].cancel()

    async def finish_uploads(self, grace_s: float) -> float:
        """Start no upload, give those in flight up to `grace_s`; returns the deadline (loop
        time) of the whole grace period."""
        self.uploader.stop_taking()
        deadline = asyncio.get_running_loop().time() + grace_s
        await asyncio.wait([self.tasks["uploader"]], timeout=grace_s)
        return deadline

    async def drain_results(self, since: float, deadline: float) -> None:
        """Until no clip uploaded since `since` waits for its result or its alerts, or the
        deadline."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            if not await self.db.call(self.db.ledger.reports.awaiting_results, since):
                return
            await asyncio.sleep(0.1)

    def cancel_the_rest(self) -> None:
        for name, task in self.tasks.items():
            if name != "sources":
                task.cancel()


async def build_pipeline(
    config: Config, db: AsyncLedger, api: ApiClient, notifier: Notifier
) -> Pipeline:
    """Every stage of `edged run`, wired to the others; nothing runs yet."""
    persons = await person_directory(config, db)
    alerts = await alert_stages(config, db, persons.names)
    analyzer, delivery = alerts.analyzer, alerts.delivery
    metrics = Metrics(db, config.storage.dir)
    role = listener_role(config.api.mode, bool(persons.images))
    callbacks = CallbackApp(
        db,
        persons,
        max_attempts=config.api.max_attempts,
        on_result=lambda _clip_id: analyzer.wake.set(),
        snapshots=alerts.snapshots,
        rejections=Rejections(on_count=lambda r: metrics.callbacks_rejected.labels(r).inc()),
        callbacks=role is ListenerRole.CALLBACKS,
        limits=listener_limits(config),
    )
    uploader = Uploader(
        db,
        api,
        analysis_template(config, persons),
        upload_settings(config),
        guardrails=guardrails(config),
    )
    callbacks.on_pause = uploader.pause
    quota = StorageQuota(db, config.storage)
    settings = upload_settings(config)
    gate = ActivityGate(
        db,
        config.cameras,
        on_queued=uploader.wake.set,
        storage_dir=config.storage.dir,
        upload_limits=(settings.max_file_bytes, settings.max_duration_s),
    )

    def clip_added() -> None:
        gate.wake.set()
        uploader.wake.set()
        quota.wake.set()

    return Pipeline(
        config=config,
        db=db,
        role=role,
        sources=SourceSupervisor(
            lambda camera: make_source(db, camera, clip_added, config, gate.findings)
        ),
        gate=gate,
        uploader=uploader,
        expirer=Expirer(db, config, uploader.wake.set),
        callbacks=callbacks,
        analyzer=analyzer,
        delivery=delivery,
        quota=quota,
        daily=DailyReport(db),
        metrics=metrics,
        watchdog=Watchdog(notifier, lambda: ledger_writable(db)),
    )
