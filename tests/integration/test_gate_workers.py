"""The activity gate's workers: a camera whose network share stalls holds up its own clips
only, a few examinations read at once, a read that outlives its timeout is not joined by a
second one, a stop ends an examination at its next frame, and `decode: all` is what is
examined. Real H.264 files and a real ledger; the stalled share is a pipe nobody writes to,
whose reads block in the kernel as a hung NFS or SMB read does (and, like one, do not see the
stop event until they return)."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

import av
import pytest

from edged.activity import ClipActivity
from edged.clip import Clip, ClipState, NewClip
from edged.config.model import Camera, parse_config
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.recording_files import open_recording
from edged.sources.activity_gate import ActivityGate
from edged.sources.gate_workers import Examinations
from tests.support.activity_scene import Scene, Walker, write_video
from tests.support.waiting import eventually

QUIET = Scene(seconds=12, noise=((0, 2.0),))
WALKING = Scene(seconds=12, noise=((0, 2.0),), walkers=(Walker(3, 5),))


class StalledShare:
    """Opens the files of the clips it is told to stall as pipes that give nothing until
    released (then end: the file cannot be decoded); the others as the gate does."""

    def __init__(self, stalled: Callable[[Clip], bool]) -> None:
        self._stalled = stalled
        self._lock = threading.Lock()
        self._writers: dict[int, int] = {}  # clip id: the write end, until released
        self.opened: list[int] = []  # every clip opened, in order
        self.most = 0  # stalled reads at once, at most

    def open(self, clip: Clip) -> BinaryIO:
        if not self._stalled(clip):
            with self._lock:
                self.opened.append(clip.id)
            return open_recording(clip)
        read, write = os.pipe()
        with self._lock:
            self.opened.append(clip.id)
            self._writers[clip.id] = write
            self.most = max(self.most, len(self._writers))
        return os.fdopen(read, "rb")

    @property
    def waiting(self) -> set[int]:
        with self._lock:
            return set(self._writers)

    def release(self, *clip_ids: int) -> None:
        with self._lock:
            for clip_id in clip_ids or tuple(self._writers):
                os.close(self._writers.pop(clip_id))


class SlowShare:
    """Serves one recording through a pipe: its first third at once, the rest on `more`,
    and no end of file until `finish`: a reader that does not stop reads all it is given
    and then waits for more."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._more = threading.Event()
        self._finish = threading.Event()
        self._write: int | None = None
        self._writer: threading.Thread | None = None
        self.opened = threading.Event()

    def open(self, clip: Clip) -> BinaryIO:
        read, self._write = os.pipe()
        self.opened.set()
        self._writer = threading.Thread(target=self._serve, args=(self._write,), daemon=True)
        self._writer.start()
        return os.fdopen(read, "rb")

    def _serve(self, fd: int) -> None:
        third = len(self._data) // 3
        try:
            _write_all(fd, self._data[:third])
            self._more.wait()
            _write_all(fd, self._data[third:])
        except BrokenPipeError:
            pass  # the reader stopped and closed its end
        self._finish.wait()
        os.close(fd)

    def more(self) -> None:
        self._more.set()

    def reader_gone(self) -> bool:
        """Whether the reading end is closed (the examination ended)."""
        assert self._write is not None
        poll = select.poll()
        poll.register(self._write, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))

    def finish(self) -> None:
        self._more.set()
        self._finish.set()
        if self._writer is not None:
            self._writer.join(10)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _as_ts(source: Path, target: Path) -> Path:
    """The recording remuxed into MPEG-TS, which can be read from a pipe (MP4 cannot)."""
    with av.open(str(source)) as given, av.open(str(target), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(given.streams.video[0])
        for packet in given.demux(given.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("workers")
    return {
        "quiet": write_video(QUIET, folder / "quiet.mp4", keyframe_s=1.0),
        "walk": write_video(WALKING, folder / "walk.mp4", keyframe_s=1.0),
    }


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncLedger]:
    opened = AsyncLedger(await asyncio.to_thread(Ledger, tmp_path / "state"))
    yield opened
    await opened.aclose()


def _cameras(*cameras: str, activity: str = "{events: false}") -> tuple[Camera, ...]:
    lines = ["api: {api_key: k}", "cameras:"]
    for name in cameras:
        where = "rtsp: rtsp://127.0.0.1:9/live" if name == "porch" else f"folder: /nvr/{name}"
        lines += [f"  - name: {name}", f"    {where}", "    upload: activity"]
        lines += [f"    activity: {activity}"]
    return parse_config("\n".join(lines) + "\n", env={}).cameras


async def _add(db: AsyncLedger, camera: str, path: Path) -> int:
    size = (await asyncio.to_thread(path.stat)).st_size
    new = NewClip(camera, path, size, examine=True)
    return (await db.call(db.ledger.clips.add, new))[0].id


async def _state(db: AsyncLedger, clip_id: int) -> ClipState:
    clip = await db.call(db.ledger.clips.get, clip_id)
    assert clip is not None
    return clip.state


def _all_judged(db: AsyncLedger, *ids: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all([await _state(db, clip_id) is not ClipState.EXAMINING for clip_id in ids])

    return check


async def _last_detail(db: AsyncLedger, clip_id: int) -> str:
    events = await db.call(db.ledger.reports.clip_events, clip_id)
    return events[-1].detail or ""


async def _running(gate: ActivityGate, share: StalledShare) -> AsyncIterator[None]:
    task = asyncio.create_task(gate.run())
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        share.release()  # no examination thread is left blocked


async def test_a_stalled_share_holds_up_its_own_camera_only(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """The door camera's recording is found first and its share hangs: the yard's clips are
    judged all the same, while the door's waits; once its read returns (here, with nothing),
    it is sent as it is."""
    share = StalledShare(lambda clip: clip.camera == "door")
    door = await _add(db, "door", videos["quiet"])
    walk, quiet = [await _add(db, "yard", videos[name]) for name in ("walk", "quiet")]
    examinations = Examinations(open_file=share.open)
    cameras = _cameras("door", "yard")
    gate = ActivityGate(
        db, cameras, on_queued=lambda: None, storage_dir=tmp_path, examinations=examinations
    )
    async for _ in _running(gate, share):
        await eventually(_all_judged(db, walk, quiet), what="the yard's clips judged")
        assert await _state(db, walk) is ClipState.QUEUED
        assert await _state(db, quiet) is ClipState.SKIPPED_IDLE
        assert await _state(db, door) is ClipState.EXAMINING and share.waiting == {door}
        share.release(door)
        await eventually(_all_judged(db, door), what="the door's clip judged")
    assert await _state(db, door) is ClipState.QUEUED
    assert "cannot be decoded" in await _last_detail(db, door)


async def test_two_examinations_read_at_once_and_a_clip_seen_live_needs_no_turn(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """Three cameras' shares hang: two reads are waited on, the third camera waits for its
    turn (it comes when one of the two returns); an RTSP camera's clip, seen as it was
    recorded, is judged meanwhile."""
    share = StalledShare(lambda clip: clip.camera != "porch")
    ids = {name: await _add(db, name, videos["quiet"]) for name in ("a", "b", "c")}
    recorded = tmp_path / "porch.mp4"  # its own file: findings are by file
    await asyncio.to_thread(shutil.copyfile, videos["quiet"], recorded)
    porch = await _add(db, "porch", recorded)
    gate = ActivityGate(
        db,
        _cameras("a", "b", "c", "porch"),
        on_queued=lambda: None,
        storage_dir=tmp_path,
        examinations=Examinations(open_file=share.open),
    )
    gate.findings.put(recorded, ClipActivity(12.0, 12, (4, 5), 9.0, 0.01))
    async for _ in _running(gate, share):
        await eventually(lambda: len(share.waiting) == 2, what="two reads waited on")
        await eventually(_all_judged(db, porch), what="the clip seen live judged")
        assert await _state(db, porch) is ClipState.QUEUED
        assert share.waiting == {ids["a"], ids["b"]} and ids["c"] not in share.opened
        share.release(ids["a"])
        await eventually(lambda: ids["c"] in share.waiting, what="the third camera's turn")
        assert share.most == 2
        share.release()
        await eventually(_all_judged(db, *ids.values()), what="every clip judged")


async def test_a_read_that_outlives_its_timeout_is_not_joined_by_a_second(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """The first clip's read hangs past the timeout: the clip is sent unexamined. The next
    clip of that camera would read the same share: while that read still hangs, it is sent
    too, without a second thread blocked beside the first. Once the read returns, the
    camera's clips are examined again."""
    share = StalledShare(lambda clip: clip.id == first)
    first = await _add(db, "door", videos["quiet"])
    second = await _add(db, "door", videos["quiet"])
    examinations = Examinations(timeout_s=5.0, open_file=share.open)
    gate = ActivityGate(
        db,
        _cameras("door"),
        on_queued=lambda: None,
        storage_dir=tmp_path,
        poll_s=0.1,
        examinations=examinations,
    )
    async for _ in _running(gate, share):
        await eventually(_all_judged(db, first, second), what="both clips sent")
        assert "took more than 5s" in await _last_detail(db, first)
        assert "still waits for its file" in await _last_detail(db, second)
        assert share.opened == [first] and share.waiting == {first}
        share.release()
        third = await _add(db, "door", videos["quiet"])
        gate.wake.set()
        await eventually(_all_judged(db, third), what="the third clip judged")
    assert [await _state(db, clip_id) for clip_id in (first, second, third)] == [
        ClipState.QUEUED,
        ClipState.QUEUED,
        ClipState.SKIPPED_IDLE,  # examined: nothing moved
    ]
    assert share.opened == [first, third]


async def test_decode_all_examines_the_frames_asked_for_and_not_the_live_finding(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """`decode: all` with `sample_fps: 4`: 4 frames of each second examined (keyframes are
    1 a second). An RTSP camera's live examination sees keyframes only, so with decode: all
    its finding (here: nothing moved) gives way to the file's examination (a walk)."""
    activity = "{events: false, decode: all, sample_fps: 4}"
    cameras = _cameras("yard", "porch", activity=activity)
    gate = ActivityGate(db, cameras, on_queued=lambda: None, storage_dir=tmp_path)
    quiet = await _add(db, "yard", videos["quiet"])
    walk = await _add(db, "porch", videos["walk"])
    gate.findings.put(videos["walk"], ClipActivity(12.0, 12, (), 0.0, 0.0))
    share = StalledShare(lambda clip: False)
    async for _ in _running(gate, share):
        await eventually(_all_judged(db, quiet, walk), what="both clips judged")
    assert await _state(db, quiet) is ClipState.SKIPPED_IDLE
    assert await _state(db, walk) is ClipState.QUEUED
    for clip_id in (quiet, walk):
        found = await db.call(db.ledger.activity.of, clip_id)
        assert found is not None and found.samples == 48, found


async def test_a_stop_ends_the_examination_at_its_next_frame_and_the_clip_waits_for_the_next_start(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """The gate stops while a clip is read from a slow share: given more of the file, the
    examination ends at its next frame (it closes the file), not at the file's end; the clip
    stays `examining` and the next gate examines it."""
    recording = await asyncio.to_thread(_as_ts, videos["walk"], tmp_path / "walk.ts")
    share = SlowShare(await asyncio.to_thread(recording.read_bytes))
    clip_id = await _add(db, "door", recording)
    gate = ActivityGate(
        db,
        _cameras("door"),
        on_queued=lambda: None,
        storage_dir=tmp_path,
        examinations=Examinations(open_file=share.open),
    )
    task = asyncio.create_task(gate.run())
    try:
        await eventually(share.opened.is_set, what="the file opened")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        share.more()
        await eventually(share.reader_gone, what="the examination to end at its next frame")
    finally:
        await asyncio.to_thread(share.finish)
    assert await _state(db, clip_id) is ClipState.EXAMINING

    again = ActivityGate(db, _cameras("door"), on_queued=lambda: None, storage_dir=tmp_path)
    task = asyncio.create_task(again.run())
    try:
        await eventually(_all_judged(db, clip_id), what="the clip examined at the next start")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await _state(db, clip_id) is ClipState.QUEUED  # the walk, examined
