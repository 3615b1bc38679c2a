"""`edged run`: the whole pipeline, one stage per task in one TaskGroup.

    sources → ledger → uploader → API → callback listener → ledger → analyzer → outbox → sinks

Every hand-over goes through the ledger, so on start each stage simply resumes from
it. Shutdown (SIGTERM/SIGINT, or the `shutdown` event): sources stop first, uploads
in flight get a grace period, then everything else is cancelled; exit 0. A stage
that raises ends the process non-zero, for systemd to restart it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from edged.alerts.delivery import AlertDelivery
from edged.alerts.registry import build_sinks, sink_names
from edged.analysis import AlertPolicy, Analyzer
from edged.callbacks import CallbackApp, CallbackServer
from edged.clip import ClipState
from edged.config import Config
from edged.errors import EdgedError
from edged.ledger import Ledger
from edged.ledger_async import AsyncLedger
from edged.sources.folder import FolderSource
from edged.uploader import Uploader
from edged.wiring import analysis_template, api_client, person_directory, upload_settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 20.0


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
            expired = await self._db.run(
                self._db.ledger.expire_overdue, self._timeout_s, self._max_attempts
            )
            for clip in expired:
                log.warning(
                    "no result in time camera=%s clip=%s state=%s", clip.camera, clip.id, clip.state
                )
            if expired:
                self._on_expired()
            await asyncio.sleep(self._every_s)


async def run_daemon(
    config: Config,
    *,
    shutdown: asyncio.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
    grace_s: float = SHUTDOWN_GRACE_S,
) -> int:
    """Runs until `shutdown` is set (or a signal); `on_ready(callback_port)` once serving."""
    rtsp = [camera.name for camera in config.cameras if camera.rtsp is not None]
    if rtsp:
        raise DaemonError(
            f"cameras {', '.join(rtsp)}: RTSP sources are not in this release yet;"
            " record them with the NVR and use folder: instead"
        )
    shutdown = shutdown or _signal_event()
    loop = asyncio.get_running_loop()
    started_at = time.time()
    ledger = await asyncio.to_thread(Ledger, config.storage.dir)
    db = AsyncLedger(ledger)
    try:
        resumed = await db.run(ledger.resume)
        if resumed:
            log.info("resumed %d clips that were mid-upload", resumed)
        persons = await db.run(person_directory, config, ledger)
        sink_configs = config.alerts.sinks
        policy = AlertPolicy(
            person_names=persons.names,
            min_confidence=config.alerts.min_confidence,
            sink_names=tuple(sink_names([s.type for s in sink_configs])),
            instance=config.instance,
        )
        delivery = AlertDelivery(
            db,
            build_sinks(sink_configs),
            cooldown_s=config.alerts.cooldown,
            retry_max_age_s=config.alerts.retry_max_age,
        )
        analyzer = Analyzer(db, policy, on_alerts=delivery.wake)
        callbacks = CallbackApp(
            db,
            persons,
            max_attempts=config.api.max_attempts,
            on_result=lambda _clip_id: analyzer.wake.set(),
        )
        async with api_client(config) as api:
            uploader = Uploader(
                db, api, analysis_template(config, persons), upload_settings(config)
            )
            sources = [
                FolderSource(db, camera, on_clip=uploader.wake.set)
                for camera in config.cameras
                if camera.folder is not None
            ]
            server = CallbackServer(callbacks.app(), config.callback.host, config.callback.port)
            async with server, asyncio.TaskGroup() as group:
                source_tasks = [
                    group.create_task(s.run(), name=f"source:{s.name}") for s in sources
                ]
                upload_task = group.create_task(uploader.run(), name="uploader")
                others = [
                    group.create_task(analyzer.run(), name="analyzer"),
                    group.create_task(delivery.run(), name="alerts"),
                    group.create_task(Expirer(db, config, uploader.wake.set).run(), name="expirer"),
                ]
                log.info(
                    "edged running: %d sources, %d upload workers, callbacks on port %d",
                    len(sources),
                    config.api.max_concurrent_uploads,
                    server.port,
                )
                if on_ready is not None:
                    on_ready(server.port)
                await shutdown.wait()
                log.info("stopping: sources first, then up to %.0fs for uploads in flight", grace_s)
                for task in source_tasks:
                    task.cancel()
                uploader.stop_taking()
                deadline = loop.time() + grace_s
                await asyncio.wait([upload_task], timeout=grace_s)
                # Results of the uploads just finished are on their way: keep the listener
                # and the analyzer up for them (within the grace period), or each would be
                # uploaded and paid for again after the restart.
                await _drain_results(db, started_at, deadline)
                for task in [upload_task, *others]:
                    task.cancel()
    finally:
        await db.aclose()
    log.info("stopped")
    return 0


async def _drain_results(db: AsyncLedger, since: float, deadline: float) -> None:
    """Wait until no clip uploaded by this run waits for its result or its alerts."""
    loop = asyncio.get_running_loop()
    query = "SELECT COUNT(*) AS n FROM clips WHERE (state=? AND upload_finished_at >= ?) OR state=?"
    while loop.time() < deadline:
        rows = await db.run(
            db.ledger.execute, query, (ClipState.SUBMITTED, since, ClipState.ANALYZED)
        )
        if not rows[0]["n"]:
            return
        await asyncio.sleep(0.1)


def _signal_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, event.set)
    return event
