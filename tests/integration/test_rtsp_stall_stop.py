"""A stalled camera (the server stopped, its connection open: no byte comes on the socket)
while edged is asked to stop. FFmpeg's socket timeout, not a Python callback inside FFmpeg,
ends the stalled read: within `stall_timeout` the connection's thread ends and the clip in
progress is closed and queued; with a stall timeout longer than the stop may take, a real
`edged run` still exits 0 promptly (the part is recovered on the next start)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

from edged.emulator import Emulator
from edged.sources.rtsp import STOP_WAIT_S
from tests.support.edged import write_config
from tests.support.rtsp import (
    CLIP_S,
    ServerFactory,
    camera_yaml,
    cams_clips,
    check_contiguous,
    running_cameras,
)
from tests.support.waiting import eventually

STALL_S = 30.0  # far longer than the stop may take


async def test_a_stop_with_a_stalled_camera_is_not_held_up(
    emulator: Emulator, rtsp_server: ServerFactory, edged_run, tmp_path: Path
):
    server = await rtsp_server()
    camera = camera_yaml("porch", server.url, stall_timeout=f"{STALL_S:g}s")
    config = write_config(tmp_path, emulator.url, extra="cameras:\n" + camera)
    run = await edged_run(config)
    parts = tmp_path / "state" / "clips" / "porch"
    deadline = time.monotonic() + 30
    while not list(parts.rglob("*.part")):
        assert time.monotonic() < deadline, "no clip in progress after 30 s"
        await asyncio.sleep(0.1)
    await asyncio.to_thread(server.pause)  # the connection stays open, nothing more comes
    try:
        started = time.monotonic()
        code = await run.stop(signal.SIGTERM)
        took = time.monotonic() - started
        err = run.log()
    finally:
        await asyncio.to_thread(server.resume)
    assert code == 0, err
    assert took < STOP_WAIT_S + 10, f"the stop took {took:.1f}s with a stalled camera"


def _connection_threads(camera: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"rtsp:{camera}"]


async def test_a_stop_ends_a_stalled_connection_by_its_socket_timeout_and_queues_the_clip(
    rtsp_server: ServerFactory, tmp_path: Path
):
    server = await rtsp_server()
    stall_s = 2.0  # below STOP_WAIT_S: the stop waits for the stalled read to time out
    assert stall_s < STOP_WAIT_S
    camera = camera_yaml("porch", server.url, stall_timeout=f"{stall_s:g}s")
    try:
        async with running_cameras(tmp_path, camera) as cams:

            def growing() -> bool:
                return any(p.stat().st_size >= 4096 for p in cams.parts("porch") if p.exists())

            await eventually(growing, timeout_s=20, what="a clip in progress")
            assert len(_connection_threads("porch")) == 1
            await asyncio.to_thread(server.pause)  # nothing more on the socket
            # Leaving the block stops the source while its thread waits in FFmpeg's read.
        # Without an interrupt callback nothing but the socket timeout can end that read;
        # it did, so the thread closed the clip in progress and the stop queued it.
        clips = await cams_clips(tmp_path, "porch")
        assert clips and 0 < clips[-1]["duration_s"] < CLIP_S, clips
        assert not cams.parts("porch"), "the clip in progress was left as a part"
        await check_contiguous(clips)
        await eventually(
            lambda: not _connection_threads("porch"),
            timeout_s=10 * stall_s,
            what="the stalled connection's thread to end",
        )
    finally:
        await asyncio.to_thread(server.resume)
