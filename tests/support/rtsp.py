"""RTSP cameras under test: the stream file and the GStreamer server fixtures (`stream_file`,
`rtsp_server`), the camera YAML, RTSP sources run in process, and checks on the clips they make.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest

from edged.config.model import parse_config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.probe import probe_video
from edged.sources.rtsp import RtspSource
from tests.support.environment import free_port
from tests.support.rtsp_server import RtspServer, index_of, make_stream_file
from tests.support.waiting import eventually

FPS = 8


CLIP_S = 5


@pytest.fixture(scope="session")
def stream_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_stream_file(tmp_path_factory.mktemp("rtsp") / "stream.mp4", seconds=600)


ServerFactory = Callable[..., Awaitable[RtspServer]]


@pytest.fixture
async def rtsp_server(stream_file: Path) -> AsyncIterator[ServerFactory]:
    """`await rtsp_server(audio="pcmu", silent=False, port=None)`: a started server."""
    servers: list[RtspServer] = []

    async def start(*, audio: str = "aac", silent: bool = False, port: int | None = None):
        server = RtspServer(stream_file, port or free_port(), audio=audio)
        servers.append(server)
        await asyncio.to_thread(server.start, silent=silent)
        return server

    yield start
    for server in servers:
        await asyncio.to_thread(server.kill)


def camera_yaml(name: str, url: str, **options: Any) -> str:
    lines = [f"  - name: {name}", f"    rtsp: {url}", f"    clip_seconds: {CLIP_S}"]
    lines += [f"    {key}: {value}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Cameras:
    db: AsyncLedger
    sources: dict[str, RtspSource]
    storage: Path

    @property
    def ledger(self) -> Ledger:
        return self.db.ledger

    async def clips(self, camera: str) -> list[dict[str, Any]]:
        rows = await self.db.call(
            self.ledger.db.rows,
            "SELECT id, path, start_at, duration_s, size, state, last_error FROM clips"
            " WHERE camera=? ORDER BY id",
            (camera,),
        )
        return [dict(row) for row in rows]

    async def outages(self, camera: str) -> list[dict[str, Any]]:
        rows = await self.db.call(
            self.ledger.db.rows, "SELECT * FROM outages WHERE camera=? ORDER BY id", (camera,)
        )
        return [dict(row) for row in rows]

    def parts(self, camera: str) -> list[Path]:
        return sorted((self.storage / "clips" / camera).rglob("*.part"))


@asynccontextmanager
async def running_cameras(
    tmp_path: Path, cameras: str, *, storage: str = ""
) -> AsyncIterator[Cameras]:
    """RTSP sources on a real ledger, as the daemon runs them; stopped (as on SIGTERM) at the
    end of the block, which queues each clip in progress."""
    state = tmp_path / "state"
    config = parse_config(
        f"api:\n  api_key: k\ncameras:\n{cameras}storage:\n  dir: {state}\n{storage}"
    )
    ledger = await asyncio.to_thread(Ledger, state)
    db = AsyncLedger(ledger)
    sources = {
        camera.name: RtspSource(db, camera, state, backoff_base_s=0.5, backoff_cap_s=2.0)
        for camera in config.cameras
    }
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(s.run(), name=f"source:{n}") for n, s in sources.items()]
            try:
                yield Cameras(db, sources, state)
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        await db.aclose()


async def wait_clips(cams: Cameras, camera: str, count: int, timeout_s: float = 30) -> None:
    async def enough() -> bool:
        return len(await cams.clips(camera)) >= count

    await eventually(enough, timeout_s=timeout_s, what=f"{count} clips of {camera}")


def _row_mean(plane: Any) -> float:
    data = bytes(plane)
    row = plane.line_size * (plane.height // 2)
    values = data[row : row + plane.width]
    return sum(values) / len(values)


def frame_indices(path: Path) -> list[int]:
    """Blocking: the index (mod 256) of every frame of a clip, decoded."""
    with av.open(str(path)) as container:
        return [
            index_of(*(_row_mean(plane) for plane in frame.planes))
            for frame in container.decode(container.streams.video[0])
        ]


def runs(indices: list[int]) -> Iterator[tuple[int, int]]:
    """Pairs of consecutive frames that are not consecutive in the stream."""
    for before, after in itertools.pairwise(indices):
        if (before + 1) % 256 != after:
            yield before, after


async def check_contiguous(clips: list[dict[str, Any]]) -> list[list[int]]:
    """Each clip plays and holds consecutive frames; each starts with the frame after the
    previous clip's last, and at the wall-clock time the previous one ended."""
    decoded = []
    for clip in clips:
        path = Path(clip["path"])
        info = await asyncio.to_thread(probe_video, path, max_bytes=1 << 40, max_duration_s=1e6)
        assert info.codec == "h264"
        indices = await asyncio.to_thread(frame_indices, path)
        assert indices, clip
        assert list(runs(indices)) == [], f"frames missing or repeated inside {path.name}"
        assert len(indices) == round(clip["duration_s"] * FPS), clip
        decoded.append(indices)
    for before, after, clip, following in zip(decoded, decoded[1:], clips, clips[1:], strict=False):
        assert (before[-1] + 1) % 256 == after[0], (clip["path"], following["path"])
        end = datetime.fromisoformat(clip["start_at"]) + timedelta(seconds=clip["duration_s"])
        gap = datetime.fromisoformat(following["start_at"]) - end
        assert abs(gap.total_seconds()) < 0.001, (clip, following)
    return decoded


def video_seconds(path: Path) -> float:
    """Blocking: how much video a (possibly growing or torn) MP4 holds."""
    end = 0.0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.pts is not None and packet.time_base is not None:
                    end = max(end, float((packet.pts + packet.duration) * packet.time_base))
    except (av.FFmpegError, OSError):
        pass  # the torn end of a part being written
    return end


async def cams_clips(tmp_path: Path, camera: str) -> list[dict[str, Any]]:
    """The clips of `camera` from the ledger, after the sources stopped."""
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    try:
        rows = await asyncio.to_thread(
            ledger.db.rows,
            "SELECT id, path, start_at, duration_s, size, state FROM clips WHERE camera=?"
            " ORDER BY id",
            (camera,),
        )
        return [dict(row) for row in rows]
    finally:
        await asyncio.to_thread(ledger.close)
