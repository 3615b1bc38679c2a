"""`edged run`: the whole pipeline, one stage per task in one TaskGroup, in named phases.

    sources → ledger → uploader → API → callback listener → ledger → analyzer → outbox → sinks

Every hand-over goes through the ledger, so on start each stage simply resumes from
it. Shutdown (SIGTERM/SIGINT, or the `shutdown` event): sources stop first, uploads
in flight get a grace period, then everything else is cancelled; exit 0. A stage
that raises ends the process non-zero, for systemd to restart it. SIGHUP reloads the
config (edged/service/reload.py). The stages are built, started and stopped by
edged/service/pipeline.py; this module is the order of the phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from edged.aio import first_of
from edged.config.model import Config
from edged.errors import EdgedError
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.service.pipeline import Pipeline, build_pipeline
from edged.service.reload import reload_config
from edged.service.sdnotify import Notifier
from edged.service.wiring import api_client
from edged.upload.api import ApiClient

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 20.0


class DaemonError(EdgedError):
    """The daemon cannot start with this config."""


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
    started_at = time.time()
    ledger = await asyncio.to_thread(Ledger, config.storage.dir)
    db = AsyncLedger(ledger)
    try:
        resumed = await db.call(ledger.uploads.resume)
        if resumed:
            log.info("resumed %d clips that were mid-upload", resumed)
        async with api_client(config) as api, contextlib.AsyncExitStack() as stack:
            # Start: every stage built, the callback listener open, each stage a task.
            pipeline = await build_pipeline(config, db, api, notifier)
            listener_port = await pipeline.listen(stack)
            pipeline.start(await stack.enter_async_context(asyncio.TaskGroup()))
            await pipeline.serve_health(stack)
            log.info(
                "edged running: %d cameras, %d upload workers; public listener: %s",
                len(config.cameras),
                config.api.max_concurrent_uploads,
                pipeline.role.describe(listener_port),
            )
            notifier.ready()
            if on_ready is not None:
                on_ready(listener_port)
            # Run until stopped, reloading the config when asked.
            await _until_stopped(shutdown, reload, config_path, config, pipeline, api)
            # Stop, in the order that loses nothing (edged/service/pipeline.py).
            notifier.stopping()
            log.info("stopping: sources first, then up to %.0fs for uploads in flight", grace_s)
            await pipeline.stop_sources()
            deadline = await pipeline.finish_uploads(grace_s)
            await pipeline.drain_results(started_at, deadline)
            pipeline.cancel_the_rest()
    finally:
        await db.aclose()
    log.info("stopped")
    return 0


async def _until_stopped(
    shutdown: asyncio.Event,
    reload: asyncio.Event,
    config_path: Path | None,
    config: Config,
    pipeline: Pipeline,
    api: ApiClient,
) -> None:
    while not shutdown.is_set():
        await first_of(shutdown.wait(), reload.wait())
        if reload.is_set() and not shutdown.is_set():
            reload.clear()
            if config_path is None:
                log.warning("reload asked for, but edged was not started from a file")
                continue
            config = await reload_config(
                config_path, config, pipeline.sources, pipeline.uploader, api, pipeline.gate
            )


def _install_signals(shutdown: asyncio.Event, reload: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shutdown.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
