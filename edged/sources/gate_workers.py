"""The activity gate's examinations: a worker per camera, a few of them reading at once.

Each configured camera's `examining` clips are judged in the order they were found by a worker
of that camera, one at a time, so that a camera whose network share stalls (an examination
that runs into its timeout) holds up its own clips only. At most `MAX_EXAMINATIONS` files are
read and decoded at once, whatever the number of cameras: the work is the decoder's (about
8 ms a 1080p keyframe, mostly outside the GIL), so two threads already keep two cores busy,
and more would only slow each examination down and take the cores the recording, the uploads
and the live examination of RTSP cameras need; two also leave a slot to the other cameras
while one camera's share stalls. A thread still blocked in a read after its timeout is not
joined by a second one on the same share: the camera's next clip waits for it first.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from edged.activity import ClipActivity, Decode, Settings, examine_file
from edged.clip import Clip
from edged.errors import EdgedError
from edged.media.recording_files import FORMAT_OPTIONS, open_recording

#: Examinations that read and decode at once, across cameras (see above).
MAX_EXAMINATIONS = 2
#: An examination that takes longer (a stalled network share) is given up: the clip is sent.
EXAMINE_TIMEOUT_S = 120.0

OpenFile = Callable[[Clip], BinaryIO]
Judge = Callable[[Clip, "CameraWorker"], Awaitable[None]]


class NotExamined(EdgedError):
    """The clip's file was not examined; the message says why (the clip is sent as it is)."""


@dataclass(frozen=True, slots=True)
class Look:
    """How a camera's clips are examined: the detector's settings and what is decoded."""

    settings: Settings
    decode: Decode = Decode.KEYFRAMES
    sample_fps: float = 2.0


def examine_clip(
    clip: Clip,
    look: Look,
    stop: threading.Event,
    *,
    open_file: OpenFile = open_recording,
) -> ClipActivity:
    """Blocking: the clip's file opened as the upload opens it, then examined."""
    with open_file(clip) as handle:
        return examine_file(
            handle,
            look.settings,
            options=FORMAT_OPTIONS,
            decode=look.decode,
            sample_fps=look.sample_fps,
            stop=stop,
        )


class CameraWorker:
    """One configured camera's clips, judged one at a time in the order they were found."""

    def __init__(self, name: str, pool: Examinations) -> None:
        self.name = name
        self._pool = pool
        self.waiting: dict[int, Clip] = {}
        self.current: int | None = None
        self.task: asyncio.Task[None] | None = None
        self._stuck: asyncio.Future[ClipActivity] | None = None

    async def run(self, judge: Judge) -> None:
        """Until none of the camera's clips is waiting (`offer` starts it again)."""
        while self.waiting:
            self.current = min(self.waiting)  # the oldest found first
            clip = self.waiting.pop(self.current)
            try:
                await judge(clip, self)
            finally:
                self.current = None
                self._pool.judged.set()

    async def examine(self, clip: Clip, look: Look) -> ClipActivity:
        """The clip's file examined in a thread, in one of the pool's slots and within its
        timeout. Raises what `examine_clip` raises, or NotExamined."""
        pool = self._pool
        if self._stuck is not None:
            # Blocked in a read of the share: a second thread there would block beside it.
            await asyncio.wait({self._stuck}, timeout=pool.timeout_s)
            if not self._stuck.done():
                raise NotExamined("the camera's previous examination still waits for its file")
            self._stuck = None
        stop = threading.Event()
        async with pool.slots:
            thread = pool.start(clip, look, stop)
            try:
                async with asyncio.timeout(pool.timeout_s):
                    found = await asyncio.shield(thread)
            except TimeoutError:
                stop.set()  # a slow read ends at its next frame; a blocked one stays
                self._stuck = thread
                raise NotExamined(f"its examination took more than {pool.timeout_s:g}s") from None
        return found


class Examinations:
    """The gate's workers, one per configured camera, and the slots they share."""

    def __init__(
        self,
        *,
        slots: int = MAX_EXAMINATIONS,
        timeout_s: float = EXAMINE_TIMEOUT_S,
        open_file: OpenFile = open_recording,
    ) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.timeout_s = timeout_s
        self._open_file = open_file
        self._workers: dict[str, CameraWorker] = {}
        self._stops: set[threading.Event] = set()  # of the examinations whose thread runs
        #: Set after each clip judged.
        self.judged = asyncio.Event()

    def offer(self, clips: Iterable[Clip], group: asyncio.TaskGroup, judge: Judge) -> None:
        """Clips waiting to be judged, each to its camera's worker (which `judge`s them, a
        task in `group` while it has some); a clip it has, or is judging, stays there."""
        for clip in clips:
            name = clip.source or clip.camera
            worker = self._workers.get(name)
            if worker is None:
                worker = self._workers[name] = CameraWorker(name, self)
            if clip.id != worker.current:
                worker.waiting.setdefault(clip.id, clip)
        for worker in self._workers.values():
            if worker.waiting and (worker.task is None or worker.task.done()):
                worker.task = group.create_task(
                    worker.run(judge), name=f"activity-gate-{worker.name}"
                )

    def start(self, clip: Clip, look: Look, stop: threading.Event) -> asyncio.Future[ClipActivity]:
        """The examination in a worker thread; `stop()` sets its stop event until it ends."""
        loop = asyncio.get_running_loop()
        run = functools.partial(examine_clip, clip, look, stop, open_file=self._open_file)
        thread = loop.run_in_executor(None, run)
        self._stops.add(stop)

        def ended(future: asyncio.Future[ClipActivity]) -> None:
            self._stops.discard(stop)
            if not future.cancelled():
                future.exception()  # retrieved: no one awaits a thread given up or stopped

        thread.add_done_callback(ended)
        return thread

    def stop(self) -> None:
        """Every examination still running in its thread ends at its next frame."""
        for stop in tuple(self._stops):
            stop.set()
