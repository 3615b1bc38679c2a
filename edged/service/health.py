"""`/healthz` and `/metrics` on `metrics.listen`: for the monitoring of the box, never on the
public callback listener."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from edged.ledger.thread import AsyncLedger
from edged.service.metrics import Metrics
from edged.upload.api_codes import PAUSE_ADVICE, PauseReason

#: A camera's last clip age is reported, not judged (a quiet camera recording on motion is
#: normal); health fails on the ledger, the stages and the API key.
LEDGER_PROBE_TIMEOUT_S = 5.0
_PAUSES = frozenset(reason.value for reason in PauseReason)


@dataclass
class HealthInputs:
    tasks: Mapping[str, asyncio.Task[Any]]
    cameras: tuple[str, ...]
    #: What an operator should know that does not make edged unhealthy (a Frigate broker
    #: not connected: recordings are sent without reviews), by name.
    warnings: Callable[[], dict[str, str]] = dict


async def ledger_writable(db: AsyncLedger) -> bool:
    """A real write transaction: proves the ledger's thread, the file and the disk."""
    return await db.writable(LEDGER_PROBE_TIMEOUT_S)


async def health_report(db: AsyncLedger, inputs: HealthInputs) -> tuple[bool, dict[str, Any]]:
    stages = {
        name: "running" if not task.done() else "stopped" for name, task in inputs.tasks.items()
    }
    writable = await ledger_writable(db)
    found = await db.call(db.ledger.reports.last_clip_at)
    now = time.time()
    last = {camera: now - at for camera, at in found.items()}
    cameras = {
        name: {"last_clip_age_s": round(last[name], 1) if name in last else None}
        for name in sorted(set(inputs.cameras) | set(last))
    }
    pause = await db.call(db.ledger.meta.pause)
    verdicts = await db.call(db.ledger.verdicts.health)
    api: dict[str, Any] = {"auth_ok": pause is None or pause.get("reason") != "refused_key"}
    reasons = [f"stage {name} stopped" for name, state in stages.items() if state != "running"]
    if not writable:
        reasons.append("the ledger is not writable")
    if pause is not None:
        why = str(pause.get("reason"))
        api["uploads_paused"] = {
            "reason": why,
            "since": pause.get("since"),
            "message": pause.get("message"),
            "advice": PAUSE_ADVICE.get(PauseReason(why)) if why in _PAUSES else None,
        }
        reasons.append(f"uploads paused: {why}")
    healthy = not reasons
    body: dict[str, Any] = {
        "status": "ok" if healthy else "unhealthy",
        "reasons": reasons,
        "stages": stages,
        "ledger_writable": writable,
        "api": api,
        "cameras": cameras,
        "verdicts": verdicts,
    }
    warnings = inputs.warnings()
    if warnings:
        body["warnings"] = warnings
    return healthy, body


def health_app(db: AsyncLedger, metrics: Metrics, inputs: HealthInputs) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        healthy, body = await health_report(db, inputs)
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics_page(request: web.Request) -> web.Response:
        text = await asyncio.to_thread(metrics.render)
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    return app
