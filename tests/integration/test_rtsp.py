"""RTSP cameras against a real GStreamer rtsp-server (tests/support/rtsp_server.py): clips
of the set length, contiguous, playable, with audio copied, transcoded or dropped.

The fixtures and checks here are shared by the other test_rtsp*.py files. The test stream
runs at 8 fps with a keyframe every second, and every frame tells its index (mod 256), so
decoding consecutive clips shows any frame lost or repeated between them.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest

from tests.support.rtsp import (
    CLIP_S,
    ServerFactory,
    camera_yaml,
    cams_clips,
    check_contiguous,
    running_cameras,
    wait_clips,
)

# ---- servers, cameras, ledger ------------------------------------------------------------


# ---- what a clip holds -------------------------------------------------------------------


def audio_codecs(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [stream.codec_context.name for stream in container.streams.audio]


_CLIP_PATH = re.compile(r"clips/(?P<camera>[^/]+)/(?P<day>\d{4}-\d\d-\d\d)/(?P<time>\d{6})\.mp4$")


def check_named(clip: dict[str, Any], camera: str) -> None:
    """clips/<camera>/<YYYY-MM-DD>/<HHMMSS>.mp4, UTC, within a few seconds of the start."""
    match = _CLIP_PATH.search(clip["path"])
    assert match and match["camera"] == camera, clip["path"]
    named = datetime.strptime(f"{match['day']} {match['time']}", "%Y-%m-%d %H%M%S")
    start = datetime.fromisoformat(clip["start_at"])
    assert abs((named.replace(tzinfo=UTC) - start).total_seconds()) < 5, clip


# ---- the tests -----------------------------------------------------------------------------


async def test_cameras_become_contiguous_playable_clips_of_the_set_length(
    rtsp_server: ServerFactory, tmp_path: Path
):
    aac = await rtsp_server(audio="aac")
    g711 = await rtsp_server(audio="pcmu")
    cameras = camera_yaml("aac", aac.url)
    cameras += camera_yaml("g711", g711.url)
    cameras += camera_yaml("mute", aac.url, audio="drop")
    async with running_cameras(tmp_path, cameras) as cams:
        for name in ("aac", "g711", "mute"):
            await wait_clips(cams, name, 2)
    # Stopped: the clip in progress was closed and queued too, short.

    for name, audio in (("aac", ["aac"]), ("g711", ["aac"]), ("mute", [])):
        clips = await cams_clips(tmp_path, name)
        assert len(clips) >= 3, clips
        *whole, last = clips
        assert [c["duration_s"] for c in whole] == pytest.approx([CLIP_S] * len(whole), abs=0.01)
        assert 0 < last["duration_s"] <= CLIP_S + 1
        assert all(c["state"] == "queued" and c["size"] > 0 for c in clips)
        await check_contiguous(clips)
        for clip in clips:
            check_named(clip, name)
            assert await asyncio.to_thread(audio_codecs, Path(clip["path"])) == audio, name
        assert not list((tmp_path / "state" / "clips" / name).rglob("*.part"))
