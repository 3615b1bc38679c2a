"""The activity gate: a clip of a camera with `upload: activity` is examined before it is
queued.

Its source adds it as `examining`; this stage examines it (in a worker thread, each camera's
clips in turn, a few cameras at once: edged/sources/gate_workers.py), stores what it found,
and moves it on: to `queued` when something moved in its zones, to `skipped_idle` when
nothing did (kept, listed by `edged status`, sent after `edged retry --skipped`), unless it
is within the rolls of a neighbour's activity (edged/sources/activity_rolls.py). A clip it
cannot read, or of a camera no longer gated after a reload, is queued all the same: footage
is never skipped unseen. A clip left `examining` by a crash or a stop is examined at the next
start. An RTSP camera's clip comes with what the live examination found as it was recorded
(edged/sources/live_activity.py): that is used instead of examining its file again (not with
`decode: all`: the live examination decodes keyframes only). Events are closed by a task of
their own, after each clip judged and at each poll, so that no examination waits for a join.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edged.activity import ClipActivity, Decode, ExamineError, Stopped
from edged.aio import woken
from edged.clip import Clip, ClipState
from edged.config.activity import ActivityConfig
from edged.config.cameras import Camera, FolderCamera
from edged.config.frigate import FrigateGateConfig
from edged.ledger.activity import ClipActivityRecord
from edged.ledger.thread import AsyncLedger
from edged.media.recording_files import RecordingChanged
from edged.sources.activity_rolls import Rolls, idle_to_send, rolled_by
from edged.sources.event_maker import EventMaker
from edged.sources.event_rules import Limits
from edged.sources.frigate_reviews import FrigateReviews
from edged.sources.gate_workers import CameraWorker, Examinations, Look, NotExamined
from edged.sources.live_activity import LiveFindings
from edged.sources.review_rules import decide, window

log = logging.getLogger(__name__)

#: How often the ledger is looked at for clips to examine when nothing wakes the gate.
POLL_S = 5.0


#: An event whose next clip has not been judged within a clip's length, the post-roll (and
#: Frigate's wait) and this margin is closed without it.
QUIET_MARGIN_S = 15.0
#: Neighbours are looked for among the camera's clips found this close to a clip.
NEIGHBOURS_FOUND_WITHIN_S = 3600.0


@dataclass(frozen=True, slots=True)
class GateRules:
    look: Look
    rolls: Rolls
    events: bool = True


def gate_rules(cameras: Iterable[Camera]) -> dict[str, GateRules]:
    """What the gate applies to each camera with `upload: activity`, by name."""
    rules = {}
    for camera in cameras:
        if camera.upload == "activity":
            activity = camera.activity or ActivityConfig()
            rolls = Rolls(activity.pre_roll, activity.post_roll)
            look = Look(activity.settings(), activity.decode, activity.sample_fps)
            rules[camera.name] = GateRules(look, rolls, activity.events)
    return rules


def frigate_cameras(cameras: Iterable[Camera]) -> dict[str, FrigateGateConfig]:
    """The `frigate:` of each camera with `upload: frigate`, by name."""
    return {
        camera.name: camera.frigate
        for camera in cameras
        if isinstance(camera, FolderCamera) and camera.upload == "frigate" and camera.frigate
    }


def event_limits(
    cameras: Iterable[Camera], max_bytes: int, max_duration_s: float
) -> dict[str, Limits]:
    """The event limits of every gated camera whose clips are joined into events: its
    max_event and the API's limits; an event not continued for a while is closed anyway;
    with `upload: activity`, its rolls (where an event is over, and what its clip keeps)."""
    limits = {}
    for camera in cameras:
        gate: ActivityConfig | FrigateGateConfig | None = None
        if camera.upload == "activity":
            gate = camera.activity or ActivityConfig()
        elif isinstance(camera, FolderCamera) and camera.upload == "frigate":
            gate = camera.frigate
        if gate is None or not gate.events:
            continue
        frigate = isinstance(gate, FrigateGateConfig)
        waits = gate.wait if isinstance(gate, FrigateGateConfig) else 0.0
        quiet_after_s = gate.post_roll + waits + QUIET_MARGIN_S
        limits[camera.name] = Limits(
            min(gate.max_event, max_duration_s),
            max_bytes,
            quiet_after_s,
            post_roll_s=None if frigate else gate.post_roll,
            pre_roll_s=None if frigate else gate.pre_roll,
        )
    return limits


def as_record(found: ClipActivity) -> ClipActivityRecord:
    return ClipActivityRecord(
        seconds=found.seconds,
        active=found.active,
        peak_score=found.peak_score,
        peak_area=found.peak_area,
        samples=found.samples,
    )


class ActivityGate:
    def __init__(
        self,
        db: AsyncLedger,
        cameras: Iterable[Camera],
        *,
        on_queued: Callable[[], None],
        storage_dir: Path,
        upload_limits: tuple[int, float] = (1 << 62, float("inf")),
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.time,
        examinations: Examinations | None = None,
    ) -> None:
        self._db = db
        cameras = tuple(cameras)
        self._upload_limits = upload_limits
        self._events = EventMaker(
            db,
            storage_dir,
            event_limits(cameras, *upload_limits),
            on_queued=on_queued,
            clock=clock,
        )
        self._rules = gate_rules(cameras)
        self._on_queued = on_queued
        self._poll_s = poll_s
        self._clock = clock
        self.wake = asyncio.Event()
        self._examinations = examinations or Examinations()
        #: Filled by the RTSP sources examined live, taken here.
        self.findings = LiveFindings()
        self._frigate = frigate_cameras(cameras)
        self._frigate_now = self._frigate  # as the latest reload has them
        self.reviews = {
            name: FrigateReviews(db, name, config, on_review=self.wake.set, on_queued=on_queued)
            for name, config in self._frigate.items()
        }

    def warnings(self) -> dict[str, str]:
        """For /healthz: Frigate subscribers that are not connected, or that refused
        messages."""
        found = {}
        for name, heard in self.reviews.items():
            if heard.connected_since is None:
                found[f"frigate.{name}"] = (
                    f"not connected to {heard.broker}: recordings are sent without reviews"
                )
            elif heard.refused:
                found[f"frigate.{name}"] = (
                    f"{heard.refused} messages on {heard.topic} were not review items"
                )
        return found

    def set_cameras(self, cameras: Iterable[Camera]) -> None:
        """After a reload: the next clips are examined with the new zones and settings; a
        change of Frigate's broker takes effect at the next restart."""
        cameras = tuple(cameras)
        self._rules = gate_rules(cameras)
        self._events.set_limits(event_limits(cameras, *self._upload_limits))
        self._frigate_now = frigate_cameras(cameras)
        if self._frigate_now != self._frigate:
            log.warning("config reloaded; changes to frigate: take effect at the next restart")

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for name, subscriber in self.reviews.items():
                group.create_task(subscriber.run(), name=f"frigate-reviews-{name}")
            group.create_task(self._close_events(), name="activity-events")
            group.create_task(self._examine_all(), name="activity-gate")

    async def _examine_all(self) -> None:
        """Hands the clips waiting to their cameras' workers, as they come and at each poll
        (what a crash or a stop left `examining` is found at the first)."""
        try:
            async with asyncio.TaskGroup() as workers:
                while True:
                    ledger = self._db.ledger
                    waiting = await self._db.call(ledger.clips.in_state, ClipState.EXAMINING)
                    self._examinations.offer(waiting, workers, self._examine)
                    await woken(self.wake, self._poll_s)
        finally:
            self._examinations.stop()  # examinations in their threads end at their next frame

    async def _close_events(self) -> None:
        """After each clip judged (a backlog must not hold back the events it ends) and at
        each poll (an event over for want of footage); one at a time, never two joins of the
        same event."""
        while True:
            await self._events.close_due()
            await woken(self._examinations.judged, self._poll_s)

    async def _examine(self, listed: Clip, worker: CameraWorker) -> None:
        clip = await self._db.call(self._db.ledger.clips.get, listed.id)
        if clip is None or clip.state is not ClipState.EXAMINING:
            return  # judged since it was listed
        name = clip.source or clip.camera
        live = self.findings.take(clip.path)
        if name in self._frigate_now:
            if name in self.reviews:
                await self._judge(clip, self._frigate_now[name], self.reviews[name])
            else:  # made a Frigate camera by a reload: its reviews are heard after a restart
                await self._pass(clip, "Frigate's reviews are heard from the next restart")
            return
        rules = self._rules.get(name)
        if rules is None:
            await self._pass(clip, "its camera no longer uploads by activity")
            return
        if live is not None and rules.look.decode is Decode.ALL:
            live = None  # seen by its keyframes only: the file is examined as asked
        try:
            found = live if live is not None else await worker.examine(clip, rules.look)
        except Stopped:
            return
        # The upload's own check fails a changed recording, with the reason; a stalled share
        # or a failed examination is given up on.
        except (RecordingChanged, NotExamined, ExamineError) as exc:
            await self._pass(clip, str(exc))
            return
        except OSError as exc:  # gone or unreadable: the upload's own checks tell which
            await self._pass(clip, f"cannot read the file: {exc.strerror or exc}")
            return
        ledger = self._db.ledger
        others = [
            other
            for other in await self._db.call(
                ledger.activity.neighbours, clip.camera, clip.found_at, NEIGHBOURS_FOUND_WITHIN_S
            )
            if other.clip_id != clip.id
        ]
        rolled = None
        if not found.active:
            by = rolled_by(rules.rolls, clip.start, clip.duration_s, others)
            rolled = None if by is None else f"within the rolls of clip {by.clip_id}"
        sent_to = self._sent_to(name)
        takes = [
            other.clip_id for other in idle_to_send(rules.rolls, clip.start, found.active, others)
        ]
        state = await self._db.call(
            ledger.activity.examined,
            clip.id,
            as_record(found),
            rolled=rolled,
            sent_to=sent_to,
            takes=takes,
        )
        if state is None:
            return
        if takes:
            log.info(
                "activity camera=%s clip=%s: its rolls take clips %s", clip.camera, clip.id, takes
            )
            self._on_queued()
        log.info(
            "activity camera=%s clip=%s: %d active seconds of %.0f, peak area %.2f%% (%s): %s",
            clip.camera,
            clip.id,
            found.active_seconds,
            found.seconds,
            found.peak_area * 100,
            "seen live" if live is not None else "its file examined",
            state.value,
        )
        if state is ClipState.QUEUED:
            self._on_queued()

    async def _judge(self, clip: Clip, config: FrigateGateConfig, heard: FrigateReviews) -> None:
        """By Frigate's review items around the recording (edged/sources/review_rules.py)."""
        if clip.start is None or clip.duration_s is None:
            decision = decide(config, None, None, (), connected_since=None, now=self._clock())
        else:
            begin, end = window(config, clip.start, clip.duration_s)
            reviews = await self._db.call(self._db.ledger.reviews.around, clip.camera, begin, end)
            decision = decide(
                config,
                clip.start,
                clip.duration_s,
                reviews,
                connected_since=heard.connected_since,
                now=self._clock(),
            )
        if decision.send is None:
            return
        moved = await self._db.call(
            self._db.ledger.activity.judged,
            clip.id,
            decision.send,
            decision.reason,
            sent_to=self._sent_to(clip.source or clip.camera),
        )
        if moved:
            log.info(
                "frigate camera=%s clip=%s: %s: %s",
                clip.camera,
                clip.id,
                "sent" if decision.send else "kept back",
                decision.reason,
            )
            if decision.send:
                self._on_queued()

    def _sent_to(self, name: str) -> ClipState:
        """In an event (joined with its neighbours once the event is over), or queued."""
        return ClipState.IN_EVENT if name in self._events.cameras else ClipState.QUEUED

    async def _pass(self, clip: Clip, reason: str) -> None:
        if await self._db.call(self._db.ledger.activity.unreadable, clip.id, reason):
            log.warning(
                "activity not examined camera=%s clip=%s, queued as it is: %s",
                clip.camera,
                clip.id,
                reason,
            )
            self._on_queued()
