"""Finds the sink modules of this package by their SINK_TYPE, and builds sinks from config."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import edged.alerts as package
from edged.alerts.base import Sink, SinkContext
from edged.config.sinks import SinkConfig


def _sink_modules() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        sink_type = getattr(module, "SINK_TYPE", None)
        if isinstance(sink_type, str):
            found[sink_type] = module
    return found


def sink_names(types: Sequence[str]) -> list[str]:
    """'webhook', then 'webhook#2' for a second one: stable while the config order is."""
    seen: dict[str, int] = {}
    names = []
    for sink_type in types:
        seen[sink_type] = seen.get(sink_type, 0) + 1
        names.append(sink_type if seen[sink_type] == 1 else f"{sink_type}#{seen[sink_type]}")
    return names


def build_sinks(configs: Sequence[SinkConfig], context: SinkContext) -> list[Sink]:
    modules = _sink_modules()
    sinks: list[Sink] = []
    for config, name in zip(configs, sink_names([c.type for c in configs]), strict=True):
        module = modules.get(config.type)
        if module is None:
            raise ValueError(f"alerts.sinks: no sink of type {config.type!r} in this edged")
        # each module takes its own model: the type is the union member its SINK_TYPE names
        create: Callable[[Any, str, SinkContext], Sink] = module.create
        sinks.append(create(config, name, context))
    return sinks
