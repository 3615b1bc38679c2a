"""`upload: activity` on real H.264 recordings: only clips in which something moves are
uploaded; the others are kept as skipped_idle, shown, and sent on `edged retry --skipped`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest

from edged.clip import ClipState, NewClip
from edged.config.model import parse_config
from edged.emulator import Emulator
from edged.ledger.activity import ClipActivityRecord
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.media.concat import concat_clips
from edged.schedule import utc_day_start
from edged.service.daily_report import DailyReport
from edged.sources.activity_gate import ActivityGate
from edged.sources.event_maker import events_root
from tests.support.activity_scene import Scene, Walker, write_video
from tests.support.edged import edged_running, run_edged, write_config
from tests.support.waiting import eventually

QUIET = Scene(width=320, height=180, fps=5, seconds=12, noise=((0, 2.0),))
WALK = Walker(3, 5)
#: The seconds of the walk's clip in which keyframes (a second apart) see it: at 3 s the figure
#: is still beyond the frame's left edge (it starts centred at x = -0.05, a third of its 30 %
#: height wide), at 7 s it is four fifths of the way across, and from 8 s it is gone.
WALK_SEEN = (4, 5, 6, 7)
#: The event clip of a, b (the walk), c, d, 12 s each, rolls of 5 s: from b's 4th second less
#: 5 s (a's 11th, a keyframe) to the end of b's 7th second plus 5 s (c's 1st), but c up to its
#: last 5 s (its 7th, a keyframe, not kept), which a walk in d would take as its pre-roll:
#: 1 s of a, 12 s of b, 7 s of c.
EVENT_FROM_S, EVENT_S = 11.0, 20.0


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gate")
    walking = Scene(**{**_fields(QUIET), "walkers": (WALK,)})
    return {
        "quiet": write_video(QUIET, folder / "quiet.mp4", keyframe_s=1.0),
        "walk": write_video(walking, folder / "walk.mp4", keyframe_s=1.0),
    }


def _fields(scene: Scene) -> dict[str, object]:
    return {name: value for name, value in scene.__dict__.items() if not name.startswith("_")}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _put(folder: Path, name: str, video: Path, *, ended_ago_s: float) -> Path:
    """Written as `.part`, then renamed into place, as NVRs do; finished `ended_ago_s` ago
    (its mtime), which, less its length, is when it was recorded."""
    part = folder / f"{name}.part"
    shutil.copyfile(video, part)
    ended = time.time() - ended_ago_s
    os.utime(part, (ended, ended))
    os.rename(part, folder / name)
    return folder / name


def _accepted(emulator: Emulator) -> set[str]:
    return {r.file_sha256 for r in emulator.received if r.status == 200 and r.file_sha256}


def _camera(folder: Path, extra: str = "") -> str:
    return (
        f"cameras:\n  - name: yard\n    folder: {folder}\n    settle: 0.5s\n"
        f"    upload: activity\n{extra}"
    )


async def test_only_clips_with_activity_are_uploaded_and_the_idle_one_waits_for_retry(
    emulator: Emulator, videos: dict[str, Path], tmp_path: Path
) -> None:
    nvr = tmp_path / "nvr"
    nvr.mkdir()
    # Recorded a minute apart, beyond each other's rolls (5 s by default).
    config = write_config(tmp_path, emulator.url, extra=_camera(nvr, "    since: 1d\n"))
    async with edged_running(config):
        ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
        try:
            walk = await asyncio.to_thread(_put, nvr, "walk.mp4", videos["walk"], ended_ago_s=120)
            quiet = await asyncio.to_thread(_put, nvr, "quiet.mp4", videos["quiet"], ended_ago_s=60)

            async def states() -> dict[str, str]:
                rows = await asyncio.to_thread(
                    ledger.db.rows, "SELECT id, path, state FROM clips ORDER BY id"
                )
                return {Path(row["path"]).name: row["state"] for row in rows}

            async def sorted_out() -> bool:
                found = await states()
                return found.get("quiet.mp4") == "skipped_idle" and found.get("walk.mp4") in (
                    "submitted",
                    "analyzed",
                    "done",
                )

            await eventually(sorted_out, timeout_s=30, what="walk uploaded, quiet kept back")
            assert _accepted(emulator) == {_sha(walk)}

            rows = await asyncio.to_thread(ledger.db.rows, "SELECT id, path FROM clips")
            ids = {Path(row["path"]).name: row["id"] for row in rows}
            idle = ledger.activity.of(ids["quiet.mp4"])
            moving = ledger.activity.of(ids["walk.mp4"])
            assert idle is not None and idle.active == () and idle.samples == 12
            assert moving is not None and moving.active
            assert all(WALK.start_s <= s <= WALK.end_s for s in moving.active), moving.active

            code, out, err = await run_edged("status", "-c", str(config))
            assert code == 0, err
            assert "skipped_idle 1" in out
            if await _one_utc_day(ledger):  # "today" holds all of it
                assert "video today (UTC): 24 s recorded, 12 s uploaded (50%)" in out, out
                assert "1 clips without activity kept back" in out
            code, out, _ = await run_edged(
                "status", "-c", str(config), "--clip", str(ids["quiet.mp4"])
            )
            assert code == 0 and "activity: 0 of 12 seconds (none)" in out, out
            assert "skipped_idle: 0 active seconds of 12" in out

            code, _, err = await run_edged("retry", "-c", str(config), "--skipped")
            assert code == 0, err
            await eventually(
                lambda: _accepted(emulator) == {_sha(walk), _sha(quiet)},
                timeout_s=30,
                what="the idle clip sent after edged retry --skipped",
            )
        finally:
            await asyncio.to_thread(ledger.close)


async def test_a_walk_across_three_recordings_is_one_upload_of_one_event_clip(
    emulator: Emulator, videos: dict[str, Path], tmp_path: Path
) -> None:
    """An NVR's four 12 s recordings in a row, someone in the second: the service gets one
    upload, the event clip of the first three trimmed to the walk and its rolls (20 s), and
    not the recordings themselves; the NVR's files are left as they were."""
    nvr = tmp_path / "nvr"
    nvr.mkdir()
    config = write_config(tmp_path, emulator.url, extra=_camera(nvr, "    since: 1d\n"))
    names = {"a.mp4": "quiet", "b.mp4": "walk", "c.mp4": "quiet", "d.mp4": "quiet"}
    # Recorded while edged was down: its catch-up finds them in one scan, oldest first, so
    # they are examined in their order (found one by one, the recording before the walk
    # could come after the event had closed by its own post-roll, and go on its own).
    for index, (name, video) in enumerate(names.items()):
        ago = 100 - 12 * index  # each ends where the next one starts
        await asyncio.to_thread(_put, nvr, name, videos[video], ended_ago_s=ago)
    async with edged_running(config):
        ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
        try:

            def uploads() -> list[str]:
                return [r.file_sha256 for r in emulator.received if r.status == 200]

            await eventually(lambda: len(uploads()) == 1, timeout_s=40, what="one upload")

            async def event_sent() -> bool:
                rows = await asyncio.to_thread(
                    ledger.db.rows,
                    "SELECT 1 FROM clips WHERE id IN (SELECT event_id FROM event_members)"
                    " AND upload_finished_at IS NOT NULL",
                )
                return bool(rows)

            # The emulator notes an upload before it answers; edged records it after.
            await eventually(event_sent, timeout_s=30, what="the event clip's upload recorded")

            async def all_judged() -> bool:
                rows = await asyncio.to_thread(
                    ledger.db.rows, "SELECT 1 FROM clips WHERE state='examining'"
                )
                return not rows

            # The event closes by its own post-roll, before the last recording is judged.
            await eventually(all_judged, timeout_s=30, what="every recording judged")
            rows = await asyncio.to_thread(
                ledger.db.rows, "SELECT id, path, state, duration_s FROM clips ORDER BY id"
            )
            by_name = {Path(row["path"]).name: row for row in rows}
            assert [by_name[n]["state"] for n in names] == ["merged"] * 3 + ["skipped_idle"]
            (event,) = [
                row for row in rows if row["path"].endswith(f"/{by_name['a.mp4']['id']}.mp4")
            ]
            # The recordings' starts (mtime less length) are a few ms more than 12 s apart: the
            # span asked for lies a few ms inside the keyframes at a's 11th and c's 1st second,
            # which the cut takes.
            assert event["duration_s"] == pytest.approx(EVENT_S, abs=0.3)
            assert uploads() == [_sha(Path(event["path"]))]
            assert {_sha(nvr / n) for n in names} == {_sha(videos[v]) for v in names.values()}

            code, out, err = await run_edged("status", "-c", str(config))
            assert code == 0, err
            assert "merged 3" in out, out
            if await _one_utc_day(ledger):
                assert "video today (UTC): 48 s recorded, 20 s uploaded (42%)" in out, out
                assert "events today: 1" in out, out
            found = await asyncio.to_thread(ledger.db.rows, "SELECT MIN(found_at) AS t FROM clips")
            day = utc_day_start(found[0]["t"])  # the day the clips were found and sent
            reading = AsyncLedger(ledger)
            try:
                line = await DailyReport(reading).report(day)
            finally:
                await reading.aclose()  # closes the test's ledger too (closed again below)
            assert "48 s of video recorded, 20 s uploaded (42%)" in line, line
            assert "1 clips without activity kept back, 1 events" in line, line
        finally:
            await asyncio.to_thread(ledger.close)


async def _one_utc_day(ledger: Ledger) -> bool:
    """Whether the clips were found on the UTC day it still is: a test that runs over
    midnight has its footage in two days, and "today" holds only part of it."""
    rows = await asyncio.to_thread(ledger.db.rows, "SELECT MIN(found_at) AS t FROM clips")
    return utc_day_start(rows[0]["t"]) == utc_day_start(time.time())


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncLedger]:
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    opened = AsyncLedger(ledger)
    yield opened
    await opened.aclose()


def _gated(folder: Path, extra: str = "") -> tuple:  # type: ignore[type-arg]
    config = parse_config(f"api: {{api_key: k}}\n{_camera(folder, extra)}", env={})
    return config.cameras


async def _run_gate(db: AsyncLedger, gate: ActivityGate, until: object) -> None:
    task = asyncio.create_task(gate.run())
    try:
        await eventually(until, timeout_s=20, what="the gate to move the clips on")  # type: ignore[arg-type]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_clips_left_examining_are_examined_and_unreadable_ones_are_queued_as_they_are(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """What a stop or a crash left `examining` is examined when the gate next runs; a file
    the gate cannot read, or a clip of a camera that no longer uploads by activity, is queued
    all the same: nothing is skipped unseen."""
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    new = [
        NewClip("yard", videos["quiet"], 1, examine=True),
        NewClip("yard", videos["walk"], 1, examine=True),
        NewClip("yard", garbage, 1, examine=True),
        NewClip("gone-camera", videos["quiet"], 1, examine=True),
    ]
    clips = [(await db.call(db.ledger.clips.add, clip))[0] for clip in new]
    assert {clip.state for clip in clips} == {ClipState.EXAMINING}
    queued = asyncio.Event()
    gate = ActivityGate(
        db, _gated(tmp_path), on_queued=queued.set, storage_dir=tmp_path / "state", poll_s=0.1
    )

    async def moved_on() -> bool:
        states = [(await db.call(db.ledger.clips.get, c.id)).state for c in clips]  # type: ignore[union-attr]
        return not {ClipState.EXAMINING, ClipState.IN_EVENT} & set(states)

    await _run_gate(db, gate, moved_on)
    states = [(await db.call(db.ledger.clips.get, c.id)).state for c in clips]  # type: ignore[union-attr]
    assert states == [
        ClipState.SKIPPED_IDLE,
        ClipState.QUEUED,
        ClipState.QUEUED,
        ClipState.QUEUED,
    ]
    assert queued.is_set()
    events = [await db.call(db.ledger.reports.clip_events, c.id) for c in clips]
    assert "not examined" in (events[2][-1].detail or "")
    assert "no longer uploads by activity" in (events[3][-1].detail or "")
    assert await db.call(db.ledger.activity.of, clips[2].id) is None


async def test_the_idle_neighbours_within_the_rolls_go_too_whatever_the_order(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """Four 12 s clips in a row, someone walking through the second from its 3rd to its 8th
    second; rolls of 5 s take the first and the third, not the fourth. Examined last to
    first: the third is taken back from skipped_idle, the first is sent as it is examined."""
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    files = {"a": videos["quiet"], "b": videos["walk"], "c": videos["quiet"], "d": videos["quiet"]}
    starts = {name: t0 + timedelta(seconds=12 * index) for index, name in enumerate(files)}
    ids = {}
    for name in ("d", "c", "b", "a"):
        new = NewClip("yard", files[name], 1, starts[name], 12.0, name, examine=True)
        ids[name] = (await db.call(db.ledger.clips.add, new))[0].id
    rolls = "    activity: {pre_roll: 5s, post_roll: 5s, events: false}\n"
    cameras = _gated(tmp_path, rolls)
    gate = ActivityGate(
        db, cameras, on_queued=lambda: None, storage_dir=tmp_path / "state", poll_s=0.1
    )

    async def states() -> dict[str, ClipState]:
        found = {}
        for name, clip_id in ids.items():
            clip = await db.call(db.ledger.clips.get, clip_id)
            assert clip is not None
            found[name] = clip.state
        return found

    async def examined() -> bool:
        return ClipState.EXAMINING not in (await states()).values()

    await _run_gate(db, gate, examined)
    assert await states() == {
        "a": ClipState.QUEUED,
        "b": ClipState.QUEUED,
        "c": ClipState.QUEUED,
        "d": ClipState.SKIPPED_IDLE,
    }
    details = {
        name: [event.detail for event in await db.call(db.ledger.reports.clip_events, clip_id)]
        for name, clip_id in ids.items()
    }
    assert f"within the rolls of clip {ids['b']}" in details["c"][-1]  # taken back
    assert f"within the rolls of clip {ids['b']}" in details["a"][-1]  # sent as examined
    assert details["d"][-1] == "0 active seconds of 12"


async def test_an_event_is_one_upload_of_its_clips_joined_and_the_clips_are_merged(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """The same four clips with events on: the first three become one event clip under
    storage.dir, trimmed at keyframes to the walk and its rolls (20 s from a's 11th second),
    queued; they are merged into it; the fourth, idle and beyond the post-roll, stays kept
    back."""
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    files = {"a": videos["quiet"], "b": videos["walk"], "c": videos["quiet"], "d": videos["quiet"]}
    ids = {}
    for index, name in enumerate(files):
        start = t0 + timedelta(seconds=12 * index)
        new = NewClip("yard", files[name], 1, start, 12.0, name, examine=True)
        ids[name] = (await db.call(db.ledger.clips.add, new))[0].id
    storage = tmp_path / "state"
    cameras = _gated(tmp_path, "    activity: {pre_roll: 5s, post_roll: 5s}\n")
    queued = asyncio.Event()
    gate = ActivityGate(db, cameras, on_queued=queued.set, storage_dir=storage, poll_s=0.1)

    async def event_clip_and_all_judged() -> bool:
        judging = await db.call(db.ledger.clips.in_state, ClipState.EXAMINING)
        return not judging and bool(await db.call(db.ledger.clips.in_state, ClipState.QUEUED))

    await _run_gate(db, gate, event_clip_and_all_judged)
    (event,) = await db.call(db.ledger.clips.in_state, ClipState.QUEUED)
    walk = await db.call(db.ledger.activity.of, ids["b"])
    assert walk is not None and walk.active == WALK_SEEN
    assert event.path.is_relative_to(storage) and event.path.exists()
    assert event.start == t0 + timedelta(seconds=EVENT_FROM_S)
    assert event.duration_s == pytest.approx(EVENT_S, abs=0.01)
    assert event.camera == "yard" and queued.is_set()
    assert await db.call(db.ledger.event_clips.members, event.id) == [ids[n] for n in "abc"]
    for name in "abc":
        member = await db.call(db.ledger.clips.get, ids[name])
        assert member is not None and member.state is ClipState.MERGED
    idle = await db.call(db.ledger.clips.get, ids["d"])
    assert idle is not None and idle.state is ClipState.SKIPPED_IDLE
    with av.open(str(event.path)) as joined:
        frames = sum(1 for _ in joined.decode(video=0))
    assert frames == EVENT_S * QUIET.fps  # every frame of what was kept, in one file


async def test_clips_that_cannot_be_joined_are_sent_one_by_one(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """A camera whose resolution changed mid-event: no event clip, each clip queued alone
    (the walk, the smaller walk, and the quiet clip within their post-roll; the last quiet
    clip, beyond it, ends the event)."""
    small = Scene(**{**_fields(QUIET), "width": 160, "height": 90, "walkers": (WALK,)})
    other = await asyncio.to_thread(write_video, small, tmp_path / "small.mp4", keyframe_s=1.0)
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    ids = []
    for index, path in enumerate((videos["walk"], other, videos["quiet"], videos["quiet"])):
        start = t0 + timedelta(seconds=12 * index)
        new = NewClip("yard", path, 1, start, 12.0, f"k{index}", examine=True)
        ids.append((await db.call(db.ledger.clips.add, new))[0].id)
    cameras = _gated(tmp_path, "    activity: {pre_roll: 5s, post_roll: 5s}\n")
    gate = ActivityGate(
        db, cameras, on_queued=lambda: None, storage_dir=tmp_path / "state", poll_s=0.1
    )

    async def sent() -> bool:
        return len(await db.call(db.ledger.clips.in_state, ClipState.QUEUED)) == 3

    await _run_gate(db, gate, sent)
    queued = await db.call(db.ledger.clips.in_state, ClipState.QUEUED)
    assert [clip.id for clip in queued] == ids[:3]
    events = await db.call(db.ledger.reports.clip_events, ids[0])
    assert "not joined into an event clip" in (events[-1].detail or "")


async def test_an_event_cut_off_before_its_transaction_is_made_once_at_the_next_start(
    db: AsyncLedger, videos: dict[str, Path], tmp_path: Path
) -> None:
    """A kill after the event file was renamed into place but before the ledger had it: the
    members are still held, so the next run joins them again into the same file name and
    queues one event clip (the walk's clip whole, 7 s of the next: past the post-roll, up to
    its last pre_roll); a leftover `.part` of a kill mid-join is written over."""
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    storage = tmp_path / "state"
    ids = []
    for index, video in enumerate(("walk", "quiet", "quiet")):
        start = t0 + timedelta(seconds=12 * index)
        new = NewClip("yard", videos[video], 1, start, 12.0, f"k{index}", examine=True)
        ids.append((await db.call(db.ledger.clips.add, new))[0].id)
    # As a run that was killed left them: examined, held.
    rolls = f"within the rolls of clip {ids[0]}"
    for clip_id, active, rolled in ((ids[0], WALK_SEEN, None), (ids[1], (), rolls)):
        found = ClipActivityRecord(
            seconds=12.0, active=active, peak_score=1.0, peak_area=0.01, samples=12
        )
        await db.call(
            db.ledger.activity.examined,
            clip_id,
            found,
            rolled=rolled,
            sent_to=ClipState.IN_EVENT,
        )
    leftover = events_root(storage) / "yard" / f"{ids[0]}.mp4"
    held = [await db.call(db.ledger.clips.get, clip_id) for clip_id in ids[:2]]
    await asyncio.to_thread(concat_clips, held, leftover)
    (leftover.parent / f"{ids[0]}.mp4.part").write_bytes(b"half a join")
    cameras = _gated(tmp_path, "    activity: {pre_roll: 5s, post_roll: 5s}\n")
    gate = ActivityGate(db, cameras, on_queued=lambda: None, storage_dir=storage, poll_s=0.1)

    async def one_event_and_all_judged() -> bool:
        # The event closes by its own post-roll, maybe before the third clip is judged.
        judging = await db.call(db.ledger.clips.in_state, ClipState.EXAMINING)
        queued = await db.call(db.ledger.clips.in_state, ClipState.QUEUED)
        return not judging and len(queued) == 1

    await _run_gate(db, gate, one_event_and_all_judged)
    (event,) = await db.call(db.ledger.clips.in_state, ClipState.QUEUED)
    # The walk's clip whole (its pre-roll reaches back before it), and the next one past the
    # end of the post-roll (1 s into it) up to its last pre_roll: 7 s (a keyframe).
    assert event.path == leftover and event.start == t0
    assert event.duration_s == pytest.approx(12 + 7, abs=0.01)
    assert await db.call(db.ledger.event_clips.members, event.id) == ids[:2]
    assert not (leftover.parent / f"{ids[0]}.mp4.part").exists()
    states = [(await db.call(db.ledger.clips.get, i)).state for i in ids]  # type: ignore[union-attr]
    assert states == [ClipState.MERGED, ClipState.MERGED, ClipState.SKIPPED_IDLE]
