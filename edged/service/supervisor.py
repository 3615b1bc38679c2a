"""The sources stage: one task per camera, started, stopped and replaced one by one, so a
config reload changes the cameras it names and leaves the others running untouched."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from edged.config.cameras import Camera

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str

    async def run(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CameraChanges:
    added: tuple[Camera, ...]
    removed: tuple[str, ...]
    changed: tuple[Camera, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_cameras(old: Sequence[Camera], new: Sequence[Camera]) -> CameraChanges:
    before = {camera.name: camera for camera in old}
    after = {camera.name: camera for camera in new}
    return CameraChanges(
        added=tuple(after[name] for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        changed=tuple(
            after[name] for name in after if name in before and after[name] != before[name]
        ),
    )


class SourceSupervisor:
    """Runs the sources of the configured cameras; a source that crashes ends the daemon (an
    unexpected error), a source stopped on purpose does not."""

    def __init__(self, make_source: Callable[[Camera], Source]) -> None:
        self._make_source = make_source
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._cameras: tuple[Camera, ...] = ()

    @property
    def tasks(self) -> dict[str, asyncio.Task[None]]:
        return dict(self._tasks)

    async def run(self, cameras: Sequence[Camera]) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for camera in cameras:
                self._start(camera)
            self._cameras = tuple(cameras)
            await asyncio.Event().wait()  # until cancelled; the group owns the sources

    def _start(self, camera: Camera) -> None:
        assert self._group is not None
        source = self._make_source(camera)
        self._tasks[camera.name] = self._group.create_task(
            source.run(), name=f"source:{camera.name}"
        )

    async def _stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def apply(self, cameras: Sequence[Camera]) -> CameraChanges:
        """Bring the running sources in line with `cameras`; returns what changed."""
        changes = diff_cameras(self._cameras, cameras)
        for name in changes.removed:
            await self._stop(name)
            log.info("camera removed camera=%s", name)
        for camera in changes.changed:
            await self._stop(camera.name)
            self._start(camera)
            log.info("camera changed, source restarted camera=%s", camera.name)
        for camera in changes.added:
            self._start(camera)
            log.info("camera added camera=%s", camera.name)
        self._cameras = tuple(cameras)
        return changes

    async def stop_all(self) -> None:
        for name in list(self._tasks):
            await self._stop(name)
