"""`edged run`: the whole pipeline, one stage per task in one TaskGroup.

    sources → ledger → uploader → API → callback listener → ledger → analyzer → outbox → sinks

Every hand-over goes through the ledger, so on start each stage simply resumes from
it. Shutdown (SIGTERM/SIGINT, or the `shutdown` event): sources stop first, uploads
in flight get a grace period, then everything else is cancelled; exit 0. A stage
that raises ends the process non-zero, for systemd to restart it. SIGHUP reloads the
config (edged/service/reload.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from edged.aio import first_of, serving
from edged.alerts.setup import alert_stages
from edged.config.listener_role import ListenerRole, listener_role
from edged.config.model import Camera, Config, FolderCamera, RtspCamera, split_host_port
from edged.errors import EdgedError
from edged.ledger import reports
from edged.ledger.clips import Ledger
from edged.ledger.thread import AsyncLedger
from edged.results.listener import CallbackApp, CallbackServer
from edged.results.rejections import Rejections
from edged.service.health import HealthInputs, health_app, ledger_writable
from edged.service.metrics import Metrics
from edged.service.reload import reload_config
from edged.service.sdnotify import Notifier, Watchdog
from edged.service.storage import StorageQuota
from edged.service.supervisor import Source, SourceSupervisor
from edged.service.wiring import (
    analysis_template,
    api_client,
    guardrails,
    listener_limits,
    person_directory,
    upload_settings,
)
from edged.sources.folder import FolderSource
from edged.sources.rtsp import RtspSource
from edged.upload.uploader import Uploader

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 20.0
#: Requests in flight on /metrics and /healthz when edged stops (aiohttp's own default).
HEALTH_SHUTDOWN_S = 60.0


class DaemonError(EdgedError):
    """The daemon cannot start with this config."""


class Expirer:
    """Clips whose result never came back are expired, then resubmitted by the uploader."""

    def __init__(self, db: AsyncLedger, config: Config, on_expired: Callable[[], None]) -> None:
        self._db = db
        self._timeout_s = config.callback.result_timeout
        self._max_attempts = config.api.max_attempts
        self._on_expired = on_expired
        self._every_s = max(0.2, min(30.0, self._timeout_s / 10))

    async def run(self) -> None:
        while True:
            expired = await self._db.call(
                self._db.ledger.expire_overdue, self._timeout_s, self._max_attempts
            )
            for clip in expired:
                log.warning(
                    "no result in time camera=%s clip=%s state=%s", clip.camera, clip.id, clip.state
                )
            if expired:
                self._on_expired()
            await asyncio.sleep(self._every_s)


def make_source(
    db: AsyncLedger, camera: Camera, on_clip: Callable[[], None], storage_dir: Path
) -> Source:
    match camera:
        case FolderCamera():
            return FolderSource(db, camera, on_clip=on_clip)
        case RtspCamera():
            return RtspSource(db, camera, storage_dir, on_clip=on_clip)


async def run_daemon(
    config: Config,
    *,
    config_path: Path | None = None,
    shutdown: asyncio.Event | None = None,
    reload: asyncio.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
    grace_s: float = SHUTDOWN_GRACE_S,
) -> int:
    """Runs until `shutdown` is set (or a signal); `on_ready(callback_port)` once serving.
    `reload` (or SIGHUP) re-reads `config_path`."""
    if shutdown is None:  # run as a program: signals drive it (tests pass their own events)
        shutdown, reload = asyncio.Event(), reload or asyncio.Event()
        _install_signals(shutdown, reload)
    reload = reload or asyncio.Event()
    notifier = Notifier()
    loop = asyncio.get_running_loop()
    started_at = time.time()
    ledger = await asyncio.to_thread(Ledger, config.storage.dir)
    db = AsyncLedger(ledger)
    try:
        resumed = await db.call(ledger.resume)
        if resumed:
            log.info("resumed %d clips that were mid-upload", resumed)
        persons = await db.call(person_directory, config, ledger)
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
        async with api_client(config) as api, contextlib.AsyncExitStack() as stack:
            uploader = Uploader(
                db,
                api,
                analysis_template(config, persons),
                upload_settings(config),
                guardrails=guardrails(config),
            )
            callbacks.on_pause = uploader.pause
            quota = StorageQuota(db, config.storage)

            def clip_added() -> None:
                uploader.wake.set()
                quota.wake.set()

            supervisor = SourceSupervisor(
                lambda camera: make_source(db, camera, clip_added, config.storage.dir)
            )
            listener_port = 0
            if role is not ListenerRole.NONE:
                server = CallbackServer(
                    callbacks,
                    config.callback.host,
                    config.callback.port,
                    on_close=lambda r: metrics.listener_closed.labels(r).inc(),
                )
                await stack.enter_async_context(server)
                listener_port = server.port
            group = await stack.enter_async_context(asyncio.TaskGroup())
            sources_task = group.create_task(supervisor.run(config.cameras), name="sources")
            upload_task = group.create_task(uploader.run(), name="uploader")
            others = {
                "analyzer": group.create_task(analyzer.run(), name="analyzer"),
                "alerts": group.create_task(delivery.run(), name="alerts"),
                "expirer": group.create_task(
                    Expirer(db, config, uploader.wake.set).run(), name="expirer"
                ),
                "metrics": group.create_task(metrics.run(), name="metrics"),
                "storage": group.create_task(quota.run(), name="storage"),
                "watchdog": group.create_task(
                    Watchdog(notifier, lambda: ledger_writable(db)).run(), name="watchdog"
                ),
            }
            stages = {"sources": sources_task, "uploader": upload_task, **others}
            if config.metrics.listen is not None:
                inputs = HealthInputs(stages, tuple(c.name for c in config.cameras))
                host, port = split_host_port(config.metrics.listen)
                health = health_app(db, metrics, inputs)
                await stack.enter_async_context(
                    serving(health, host, port, shutdown_timeout_s=HEALTH_SHUTDOWN_S)
                )
            log.info(
                "edged running: %d cameras, %d upload workers; public listener: %s",
                len(config.cameras),
                config.api.max_concurrent_uploads,
                role.describe(listener_port),
            )
            notifier.ready()
            if on_ready is not None:
                on_ready(listener_port)
            while not shutdown.is_set():
                await first_of(shutdown.wait(), reload.wait())
                if reload.is_set() and not shutdown.is_set():
                    reload.clear()
                    if config_path is None:
                        log.warning("reload asked for, but edged was not started from a file")
                        continue
                    config = await reload_config(config_path, config, supervisor, uploader, api)
            notifier.stopping()
            log.info("stopping: sources first, then up to %.0fs for uploads in flight", grace_s)
            await supervisor.stop_all()
            sources_task.cancel()
            uploader.stop_taking()
            deadline = loop.time() + grace_s
            await asyncio.wait([upload_task], timeout=grace_s)
            # Results of the uploads just finished are on their way: keep the listener
            # and the analyzer up for them (within the grace period), or each would be
            # uploaded and paid for again after the restart.
            await _drain_results(db, started_at, deadline)
            for task in [upload_task, *others.values()]:
                task.cancel()
    finally:
        await db.aclose()
    log.info("stopped")
    return 0


async def _drain_results(db: AsyncLedger, since: float, deadline: float) -> None:
    """Wait until no clip uploaded by this run waits for its result or its alerts."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        if not await db.call(reports.awaiting_results, db.ledger, since):
            return
        await asyncio.sleep(0.1)


def _install_signals(shutdown: asyncio.Event, reload: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shutdown.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
