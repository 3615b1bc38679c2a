"""Whether each camera is online, read from the ledger.

A camera is offline while it has an open outage (ended_at NULL: an RTSP source that lost its
stream records one), and also when edged has not heard from it for `offline_after`: no clip
found, no outage ended, and not just started. For a folder camera that only records on
motion, a quiet hour is not an outage: set the MQTT sink's `camera_offline_after` to null
and only outages count.

The ledger is read incrementally (clips above the last id seen), so polling it every few
seconds stays cheap on a ledger of millions of clips.
"""

from __future__ import annotations

from collections.abc import Iterable

from edged.ledger.reports import CameraActivity, CameraOutages

ONLINE, OFFLINE = "online", "offline"


class CameraWatch:
    def __init__(
        self, cameras: Iterable[str], *, offline_after_s: float | None, started_at: float
    ) -> None:
        self._started_at = started_at
        self._offline_after_s = offline_after_s
        # When edged last heard from each camera; edged's own start counts, so that a camera
        # is not called offline before it had a chance to deliver its first clip.
        self._heard: dict[str, float] = dict.fromkeys(cameras, started_at)
        self._last_clip_id = 0

    @property
    def after_clip_id(self) -> int:
        """The clips above this id are the ones not yet seen (`reports.camera_activity`)."""
        return self._last_clip_id

    def update(
        self, activity: Iterable[CameraActivity], outages: Iterable[CameraOutages], now: float
    ) -> dict[str, str]:
        """Every known camera's status now, from the ledger's reports of its new clips (since
        `after_clip_id`) and of its outages."""
        for seen in activity:
            self._hear(seen.camera, seen.last_found_at)
            self._last_clip_id = max(self._last_clip_id, seen.last_clip_id)
        down = set()
        for camera_outages in outages:
            self._hear(camera_outages.camera, camera_outages.last_ended_at or self._started_at)
            if camera_outages.down:
                down.add(camera_outages.camera)
        return {camera: self._status(camera, camera in down, now) for camera in self._heard}

    def _hear(self, camera: str, at: float) -> None:
        self._heard[camera] = max(self._heard.get(camera, self._started_at), at)

    def _status(self, camera: str, down: bool, now: float) -> str:
        if down:
            return OFFLINE
        if self._offline_after_s is None:
            return ONLINE
        return ONLINE if now - self._heard[camera] <= self._offline_after_s else OFFLINE
