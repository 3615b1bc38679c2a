"""`upload: frigate` against a real mosquitto, with review messages in the format of Frigate's
documentation (docs/docs/integrations/mqtt.md, `frigate/reviews`): recordings of a Frigate
folder are sent when a review item with a person overlaps them, kept back otherwise, and a
message that is not a review item changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
import yaml

from edged.clip import ClipState, NewClip
from edged.config.frigate import FrigateGateConfig
from edged.emulator import Emulator
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.sources.frigate_messages import ReviewMessageError, parse_review
from edged.sources.frigate_reviews import FrigateReviews
from tests.support.activity_scene import Scene, write_video
from tests.support.edged import edged_running, write_config
from tests.support.mqtt import Mosquitto
from tests.support.waiting import eventually

RECORDING = Scene(width=320, height=180, fps=5, seconds=4, noise=((0, 2.0),))


def review_message(
    kind: str, review_id: str, camera: str, start: float, end: float | None, objects: list[str]
) -> bytes:
    """A `frigate/reviews` message as Frigate's documentation shows it."""
    item = {
        "id": review_id,
        "camera": camera,
        "start_time": start,
        "end_time": end,
        "severity": "alert",
        "thumb_path": f"/media/frigate/clips/review/thumb-{camera}-{review_id}.webp",
        "data": {
            "detections": [f"{start}-abc123"],
            "objects": objects,
            "sub_labels": [],
            "zones": [],
            "audio": [],
        },
    }
    before = {**item, "end_time": None}
    return json.dumps({"type": kind, "before": before, "after": item}).encode()


def frigate_path(root: Path, camera: str, start: float) -> Path:
    """Frigate's own layout: YYYY-MM-DD/HH/<camera>/MM.SS.mp4, in UTC."""
    at = datetime.fromtimestamp(start, UTC)
    return root / at.strftime("%Y-%m-%d/%H") / camera / at.strftime("%M.%S.mp4")


def put(path: Path, video: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    shutil.copyfile(video, part)
    os.rename(part, path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.usefixtures("mosquitto_installed")
async def test_recordings_go_by_frigates_reviews(
    emulator: Emulator,
    broker: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = tmp_path / "frigate"
    root.mkdir()
    video = await asyncio.to_thread(write_video, RECORDING, tmp_path / "seg.mp4", keyframe_s=1.0)
    camera = (
        f"cameras:\n  - name: nvr\n    folder: {root}\n    preset: frigate\n    since: 1d\n"
        f"    settle: 0.5s\n    upload: frigate\n"
        f"    frigate: {{host: 127.0.0.1, port: {broker.port}, wait: 1s, pre_roll: 1s,"
        " post_roll: 1s}\n"
    )
    config = write_config(tmp_path, emulator.url, extra=camera)
    caplog.set_level(logging.INFO, logger="edged.sources.frigate_reviews")
    async with edged_running(config):
        await eventually(
            lambda: "frigate reviews camera=nvr" in caplog.text, what="edged subscribed"
        )
        ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
        try:
            # Recordings that start after edged listens: it hears every review of their time.
            t0 = math.ceil(time.time()) + 2
            door_seen = frigate_path(root, "front_door", t0)
            door_empty = frigate_path(root, "front_door", t0 + 6)
            yard_car = frigate_path(root, "back_yard", t0)
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                await client.publish("frigate/reviews", b"{not json", qos=1)
                await client.publish(
                    "frigate/reviews",
                    review_message("new", "r-door", "front_door", t0 + 1, None, ["person"]),
                    qos=1,
                )
                await client.publish(
                    "frigate/reviews",
                    review_message("end", "r-door", "front_door", t0 + 1, t0 + 2, ["person"]),
                    qos=1,
                )
                await client.publish(
                    "frigate/reviews",
                    review_message("end", "r-yard", "back_yard", t0, t0 + 3, ["car"]),
                    qos=1,
                )
            for path in (door_seen, door_empty, yard_car):
                await asyncio.to_thread(put, path, video)

            async def states() -> dict[str, str]:
                rows = await asyncio.to_thread(
                    ledger.db.rows, "SELECT path, state, last_error FROM clips"
                )
                return {row["path"]: row["state"] for row in rows}

            async def decided() -> bool:
                found = await states()
                return len(found) == 3 and not {"examining", "in_event"} & set(found.values())

            await eventually(decided, timeout_s=40, what="the three recordings judged")
            found = await states()
            assert found[str(door_seen)] in ("queued", "uploading", "submitted", "analyzed", "done")
            assert found[str(door_empty)] == "skipped_idle"
            assert found[str(yard_car)] == "skipped_idle"  # a car, not a person
            await eventually(
                lambda: (
                    {r.file_sha256 for r in emulator.received if r.status == 200}
                    == {sha(door_seen)}
                ),
                timeout_s=30,
                what="only the recording with a person uploaded",
            )
            reasons = await asyncio.to_thread(
                ledger.db.rows,
                "SELECT detail FROM events WHERE kind IN ('queued', 'in_event', 'skipped_idle')",
            )
            details = [row["detail"] for row in reasons if row["detail"]]
            assert any("Frigate review r-door (alert: person)" in d for d in details), details
            assert any("no Frigate review with person around it" in d for d in details), details
            assert "not a review item" in caplog.text  # the garbage, refused and logged
            stored = await asyncio.to_thread(ledger.db.rows, "SELECT id, end_at FROM reviews")
            assert {row["id"]: row["end_at"] for row in stored} == {
                "r-door": t0 + 2,
                "r-yard": t0 + 3,
            }
        finally:
            await asyncio.to_thread(ledger.close)


async def test_a_recording_edged_may_have_missed_the_reviews_of_is_sent(
    emulator: Emulator, tmp_path: Path
) -> None:
    """With the broker unreachable, no review can be heard: after the wait the recording is
    sent, not kept back unseen."""
    root = tmp_path / "frigate"
    root.mkdir()
    video = await asyncio.to_thread(write_video, RECORDING, tmp_path / "seg.mp4", keyframe_s=1.0)
    camera = (
        f"cameras:\n  - name: nvr\n    folder: {root}\n    preset: frigate\n    since: 1d\n"
        "    settle: 0.5s\n    upload: frigate\n"
        "    frigate: {host: 127.0.0.1, port: 9, wait: 1s, pre_roll: 1s, post_roll: 1s,"
        " events: false}\n"
    )
    config = write_config(tmp_path, emulator.url, extra=camera)
    async with edged_running(config):
        path = await asyncio.to_thread(
            put, frigate_path(root, "front_door", math.floor(time.time()) - 10), video
        )
        await eventually(
            lambda: sha(path) in {r.file_sha256 for r in emulator.received if r.status == 200},
            timeout_s=30,
            what="the recording sent without reviews",
        )
        listen = yaml.safe_load(config.read_text())["metrics"]["listen"]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{listen}/healthz") as response,
        ):
            health = await response.json()
        assert "not connected to 127.0.0.1:9" in health["warnings"]["frigate.nvr"], health


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"[]", "not a JSON object"),
        (b'{"type": "new"}', "after"),
        (b'{"type": "gone", "after": {}}', "type"),
        (review_message("new", "x" * 200, "door", 1.0, None, ["person"]), "after.id"),
        (review_message("new", "r", "door\x1b[2J", 1.0, None, ["person"]), "after.camera"),
        (review_message("end", "r", "door", 1.0, None, ["person"]), "end time"),
        (review_message("end", "r", "door", 5.0, 1.0, ["person"]), "before its start"),
        (b'{"type":"new","after":{"id":"r","camera":"d","start_time":NaN}}', "NaN"),
        (review_message("new", "r", "door", 1.0, None, ["person"] * 65), "objects"),
        (b" " * (64 * 1024 + 1), "bytes"),
        (review_message("new", "r", "door", 1.0 + 2 * 86400, None, ["person"]), "a day"),
    ],
)
def test_a_message_that_is_not_a_review_item_is_refused_with_its_reason(
    payload: bytes, why: str
) -> None:
    with pytest.raises(ReviewMessageError, match=why):
        parse_review(payload, now=1.0)


def test_frigates_documented_message_is_read() -> None:
    review_id, start = "1718987129.308396-fqk5ka", 1718987129.308396
    message = review_message("update", review_id, "front_cam", start, None, ["person", "car"])
    review = parse_review(message, now=start + 30)
    assert (review.id, review.camera, review.start_at, review.end_at) == (
        review_id,
        "front_cam",
        start,
        None,
    )
    assert review.objects == ("person", "car") and review.severity == "alert"


async def test_a_review_heard_after_its_recording_was_kept_back_sends_it(tmp_path: Path) -> None:
    """edged was restarted in the middle of a review: its recording was judged without it and
    kept back; the review's end, heard now, takes it back (and only it)."""
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    db = AsyncLedger(ledger)
    try:
        t0 = math.floor(time.time()) - 120
        clips = []
        for index, offset in enumerate((0, 60)):
            start = datetime.fromtimestamp(t0 + offset, UTC)
            new = NewClip("front_door", tmp_path / f"{index}.mp4", 1, start, 10.0, f"k{index}",
                          source="nvr", examine=True)  # fmt: skip
            clip, _ = await db.call(ledger.clips.add, new)
            judged = await db.call(ledger.activity.judged, clip.id, False, "no review")
            assert judged
            clips.append(clip.id)
        config = FrigateGateConfig(host="127.0.0.1", events=False)
        queued = asyncio.Event()
        subscriber = FrigateReviews(db, "nvr", config, on_review=lambda: None, on_queued=queued.set)
        message = review_message("end", "late", "front_door", t0 + 2, t0 + 5, ["person"])
        await subscriber._heard(message)
        states = [(await db.call(ledger.clips.get, c)).state for c in clips]  # type: ignore[union-attr]
        assert states == [ClipState.QUEUED, ClipState.SKIPPED_IDLE] and queued.is_set()
        events = await db.call(ledger.reports.clip_events, clips[0])
        assert "Frigate review late heard after it was kept back" in (events[-1].detail or "")
    finally:
        await db.aclose()
