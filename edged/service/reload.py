"""SIGHUP: re-read the config and apply what can change while running.

Cameras are added, removed or restarted one by one (the others keep running); a new API
key resumes paused uploads; schedules, budgets and activity settings apply to the next
clip. A config that does not validate is rejected with its errors and the running one is
kept. Changes to other sections are named in the log as needing a restart.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from edged.config.model import Config, ConfigError, load_config
from edged.service.supervisor import SourceSupervisor
from edged.service.wiring import guardrails
from edged.sources.activity_gate import ActivityGate
from edged.upload.api import ApiClient
from edged.upload.uploader import Uploader

log = logging.getLogger(__name__)

_RESTART_SECTIONS = ("callback", "persons", "storage", "alerts", "metrics", "instance")


async def reload_config(
    path: Path,
    current: Config,
    supervisor: SourceSupervisor,
    uploader: Uploader,
    api: ApiClient,
    gate: ActivityGate,
) -> Config:
    """Returns the config now in force: the new one, or `current` if the new one is bad."""
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        log.error("reload rejected, the running config is kept:\n%s", exc)
        return current
    changes = await supervisor.apply(new.cameras)
    new_key = new.api.api_key.get_secret_value()
    if new_key != current.api.api_key.get_secret_value():
        api.set_api_key(new_key)
        uploader.resume_after_auth()
        log.info("api key replaced")
    uploader.set_guardrails(guardrails(new))
    gate.set_cameras(new.cameras)
    api_rest = new.api.model_copy(update={"api_key": current.api.api_key})
    later = [name for name in _RESTART_SECTIONS if getattr(new, name) != getattr(current, name)]
    if api_rest != current.api:
        later.append("api (other than api_key)")
    if later:
        log.warning(
            "config reloaded; changes to %s take effect at the next restart", ", ".join(later)
        )
    log.info(
        "config reloaded: cameras added %d, removed %d, changed %d",
        len(changes.added),
        len(changes.removed),
        len(changes.changed),
    )
    return new
