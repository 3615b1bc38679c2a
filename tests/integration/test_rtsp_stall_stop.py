"""A stalled camera (the server stopped, its connection open) while a real `edged run` is
asked to stop: FFmpeg's socket timeout, not a Python callback inside FFmpeg, bounds how
long its thread can hold the stop up, and edged still exits 0 promptly."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from edged.emulator import Emulator
from edged.sources.rtsp import STOP_WAIT_S
from tests.conftest import write_config
from tests.integration.test_daemon_faults import EdgedRun
from tests.integration.test_rtsp import ServerFactory, camera_yaml, rtsp_server, stream_file

__all__ = ["rtsp_server", "stream_file"]  # fixtures used here

STALL_S = 30.0  # far longer than the stop may take


async def test_a_stop_with_a_stalled_camera_is_not_held_up(
    emulator: Emulator, rtsp_server: ServerFactory, tmp_path: Path
):
    server = await rtsp_server()
    camera = camera_yaml("porch", server.url, stall_timeout=f"{STALL_S:g}s")
    config = write_config(tmp_path, emulator.url, extra="cameras:\n" + camera)
    run = await EdgedRun.start(config)
    parts = tmp_path / "state" / "clips" / "porch"
    deadline = time.monotonic() + 30
    while not list(parts.rglob("*.part")):
        assert time.monotonic() < deadline, "no clip in progress after 30 s"
        await asyncio.sleep(0.1)
    await asyncio.to_thread(server.pause)  # the connection stays open, nothing more comes
    try:
        started = time.monotonic()
        code, err = await run.stop(signal.SIGTERM)
        took = time.monotonic() - started
    finally:
        await asyncio.to_thread(server.resume)
    assert code == 0, err
    assert took < STOP_WAIT_S + 10, f"the stop took {took:.1f}s with a stalled camera"
