"""RTSP cameras that fail: a server killed mid-clip and restarted, a server that stops
sending, a camera offline at start, one that accepts and never answers. The clip in progress
is queued short, the outage is recorded and shown by `edged status`, the camera comes back
by itself, and the other cameras never notice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from edged.commands.status import build_report, format_report
from tests.support.environment import free_port
from tests.support.rtsp import (
    CLIP_S,
    Cameras,
    ServerFactory,
    camera_yaml,
    check_contiguous,
    running_cameras,
    wait_clips,
)
from tests.support.waiting import eventually


async def _part_grows(cams: Cameras, camera: str, min_bytes: int = 4096) -> None:
    """Wait until the clip in progress has a fragment or two on disk."""

    def grown() -> bool:
        return any(p.stat().st_size >= min_bytes for p in cams.parts(camera) if p.exists())

    await eventually(grown, timeout_s=20, what=f"a clip in progress for {camera}")


async def _outage(cams: Cameras, camera: str, *, ended: bool) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        rows = await cams.outages(camera)
        found[:] = [row for row in rows if (row["ended_at"] is not None) == ended]
        return bool(found)

    state = "closed" if ended else "open"
    await eventually(check, timeout_s=25, what=f"an {state} outage of {camera}")
    return found[-1]


async def test_a_server_killed_mid_clip_queues_the_partial_clip_and_reconnects(
    rtsp_server: ServerFactory, tmp_path: Path
):
    server = await rtsp_server()
    async with running_cameras(tmp_path, camera_yaml("gate", server.url)) as cams:
        await wait_clips(cams, "gate", 1)
        await _part_grows(cams, "gate")
        killed_from = time.time()
        await asyncio.to_thread(server.kill)
        killed_by = time.time()

        await wait_clips(cams, "gate", 2)
        down = await _outage(cams, "gate", ended=False)
        first, partial = await cams.clips("gate")
        assert 0 < partial["duration_s"] < CLIP_S and partial["state"] == "queued"
        await check_contiguous([first, partial])  # the clip was closed, not lost

        restarted_at = time.time()
        await asyncio.to_thread(server.start)  # the same port, as a rebooted camera
        back = await _outage(cams, "gate", ended=True)
        assert back["id"] == down["id"] and back["ended_at"] >= back["started_at"]
        assert back["started_at"] == down["started_at"]  # one outage, not restarted
        # From the last packet received: packets flowed until the kill (a frame or so before
        # it, or read a little after it from the socket), so not later than the restart and
        # not from a reconnect attempt.
        assert killed_from - 1.0 <= down["started_at"] < restarted_at, (killed_from, down)
        assert down["started_at"] < killed_by + (restarted_at - killed_by) / 2
        assert back["ended_at"] >= restarted_at
        report = await cams.db.call(build_report, cams.ledger)
        assert cams.sources["gate"].stats.connects >= 2
        assert cams.sources["gate"].stats.outages == 1

    shown = format_report(report)
    assert "camera outages" in shown and "camera gate: " in shown, shown
    assert back["reason"] in shown, shown


async def test_a_camera_that_stops_sending_is_found_stalled_and_reconnected(
    rtsp_server: ServerFactory, tmp_path: Path
):
    server = await rtsp_server()
    stall_s = 4.0
    camera = camera_yaml("porch", server.url, stall_timeout=f"{stall_s:g}s")
    async with running_cameras(tmp_path, camera) as cams:
        await _part_grows(cams, "porch")
        paused_from = time.time()
        await asyncio.to_thread(server.pause)  # connection open, nothing sent

        down = await _outage(cams, "porch", ended=False)
        found_at = time.time()
        assert "stalled" in down["reason"], down
        # Found once nothing came for stall_timeout; dated between the pause and then.
        # (FFmpeg hands out what it still held when its socket timed out, so the last packet
        # edged sees comes up to a stall timeout after the camera's real last one.)
        assert found_at >= paused_from + stall_s
        assert paused_from <= down["started_at"] <= found_at, (down, paused_from, found_at)
        await wait_clips(cams, "porch", 1)
        (partial,) = await cams.clips("porch")
        assert 0 < partial["duration_s"] < CLIP_S
        await check_contiguous([partial])

        await asyncio.to_thread(server.resume)
        back = await _outage(cams, "porch", ended=True)
        assert back["id"] == down["id"]


async def test_offline_and_silent_cameras_hold_up_nobody_and_join_later(
    rtsp_server: ServerFactory, tmp_path: Path
):
    live = await rtsp_server()
    silent = await rtsp_server(silent=True)  # accepts the connection, never answers
    offline_port = free_port()  # nothing listens
    cameras = camera_yaml("live", live.url, stall_timeout="2s")
    cameras += camera_yaml("silent", silent.url, stall_timeout="2s")
    cameras += camera_yaml("offline", f"rtsp://127.0.0.1:{offline_port}/cam", stall_timeout="2s")
    async with running_cameras(tmp_path, cameras) as cams:
        refused = await _outage(cams, "offline", ended=False)
        hung = await _outage(cams, "silent", ended=False)
        assert "refused" in refused["reason"].lower(), refused
        await wait_clips(cams, "live", 2)  # meanwhile, the live camera is unaffected
        assert await cams.clips("offline") == [] and await cams.clips("silent") == []
        assert cams.sources["silent"].stats.connects >= 2  # it timed out and tried again

        await asyncio.to_thread(silent.kill)
        await asyncio.gather(
            rtsp_server(port=offline_port), rtsp_server(port=silent.port, audio="pcmu")
        )
        for name, outage in (("offline", refused), ("silent", hung)):
            back = await _outage(cams, name, ended=True)
            assert back["id"] == outage["id"]
        live_clips = await cams.clips("live")
        assert await cams.outages("live") == []

    await check_contiguous(live_clips)  # all whole clips, queued while the others failed
