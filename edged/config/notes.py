"""What `edged check-config` says beyond errors: settings without effect, the listener."""

from __future__ import annotations

from edged.config.listener_role import ListenerRole, listener_role
from edged.config.model import Config


def config_notes(config: Config) -> list[str]:
    """One line each: which public listener runs and why, and settings that do nothing."""
    role = listener_role(config.api.mode, any(p.image is not None for p in config.persons))
    notes = [f"public listener: {role.describe(config.callback.port)}"]
    if role is not ListenerRole.NONE:
        notes.append(
            f"public listener limits: a request head within {config.callback.head_timeout:g}s,"
            f" a body within {config.callback.body_timeout:g}s,"
            f" at most {config.callback.max_connections} connections"
        )
    if config.api.reasoning_effort is not None and not config.api.thinking:
        notes.append(
            "api.reasoning_effort has no effect: the service applies it only with"
            " api.thinking: true (it is sent as set)"
        )
    if role is ListenerRole.NONE and config.callback.public_url is not None:
        notes.append("callback.public_url has no effect in api.mode sync without local images")
    return notes
