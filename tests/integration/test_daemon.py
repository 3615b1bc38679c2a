"""`edged run` as a whole: clips in the ledger → emulator over HTTP → callbacks → matcher →
alert outbox → a real webhook receiver, plus `edged status` and `edged retry` beside it.

The fault tests (lost and late callbacks, API and webhook outages, SIGTERM, kill -9) are in
test_daemon_faults.py; the helpers both use are in tests/support/.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from edged.emulator import Emulator
from edged.ledger.store import Ledger
from edged.media.samples import make_clip
from tests.support.edged import INSTANCE, daemon_config, edged_running, run_edged
from tests.support.emulator import uploads_of
from tests.support.ledger import (
    CAMERA,
    all_sent,
    expected_ids,
    outbox,
    query,
    queue_clip,
    reached,
)
from tests.support.waiting import until
from tests.support.webhook import Receiver

# ---- a webhook receiver ---------------------------------------------------------------------


# ---- config, ledger and daemon helpers ------------------------------------------------------


# ---- the pipeline end to end ----------------------------------------------------------------


async def test_clips_become_exactly_the_expected_signed_alerts(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    alice = await queue_clip(ledger, await clip_factory("front-1.mp4", title="Alice at the door"))
    bob = await queue_clip(ledger, await clip_factory("front-2.mp4", title="Bob with a parcel"))
    nobody = await queue_clip(ledger, await clip_factory("front-3.mp4", title="An empty porch"))

    async with edged_running(config) as daemon:
        done = {alice: "done", bob: "done", nobody: "done"}
        await until(reached(ledger, done), daemon, what="every clip done")
        # Alerts are queued in the transaction that marks a clip done: the outbox is final now.
        await until(all_sent(ledger, 4), daemon, what="2 alerts x 2 sinks sent")

    rows = await outbox(ledger)
    assert [(r["clip_id"], r["person"], r["sink"]) for r in rows] == [
        (alice, "Alice", "log"),
        (alice, "Alice", "webhook"),
        (bob, "Bob", "log"),
        (bob, "Bob", "webhook"),
    ]
    assert all(r["attempts"] == 1 for r in rows)
    ids = await expected_ids(ledger, [(alice, "Alice"), (bob, "Bob")])
    assert {r["alert_id"] for r in rows} == ids

    assert len(receiver.hits) == 2 and receiver.delivered_ids() == Counter(ids)
    for hit in receiver.hits:
        alert = hit.alert
        assert hit.signature_ok, hit.headers
        assert hit.headers["webhook-id"] == alert["alert_id"]
        assert (alert["clip"]["id"], alert["person"]) in ((alice, "Alice"), (bob, "Bob"))
        assert alert["camera"] == CAMERA and alert["instance"] == INSTANCE
        assert alert["confidence"] == pytest.approx(0.92)
        start = datetime.fromisoformat(alert["clip"]["start"])
        end = datetime.fromisoformat(alert["clip"]["end"])
        assert (end - start).total_seconds() == pytest.approx(1.0)
        assert f"{alert['person']} appears near the door" in alert["summary"]
        assert "```" not in alert["summary"]

    assert [len(uploads_of(emulator, c)) for c in (alice, bob, nobody)] == [1, 1, 1]
    assert all(r.status == 200 for r in emulator.received)


async def test_a_result_that_negates_the_persons_raises_no_alert(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    negated = "The yard is empty. There is no sign of Alice, and Bob does not appear."
    emulator.options.text = negated  # prose only: the matcher's text path decides
    async with edged_running(config) as daemon:
        quiet = await queue_clip(ledger, await clip_factory("yard-1.mp4", title="Alice and Bob"))
        await until(reached(ledger, {quiet: "done"}), daemon, what="the negated clip done")
        assert await outbox(ledger) == []
        stored = await asyncio.to_thread(ledger.results.result, quiet)
        assert stored is not None and stored.text == negated

        # Prose alone is recorded below min_confidence; the verdict block is what alerts.
        emulator.options.text = (
            "Alice walks up to the gate at 00:01 and rings the bell.\n```json\n"
            '{"persons": [{"name": "Alice", "present": true, "confidence": 0.9}]}\n```'
        )
        seen = await queue_clip(ledger, await clip_factory("yard-2.mp4"))
        await until(reached(ledger, {seen: "done"}), daemon, what="the second clip done")
        await until(all_sent(ledger, 2), daemon, what="Alice's alerts sent")

    assert {(r["clip_id"], r["person"]) for r in await outbox(ledger)} == {(seen, "Alice")}
    assert [hit.alert["clip"]["id"] for hit in receiver.hits] == [seen]


async def test_duplicate_callbacks_give_one_alert_per_clip_person_and_sink(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    emulator.options.duplicate_callbacks = 2
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    alice = await queue_clip(ledger, await clip_factory("gate-1.mp4", title="Alice"))
    both = await queue_clip(ledger, await clip_factory("gate-2.mp4", title="Alice and Bob"))

    async with edged_running(config) as daemon:
        await until(reached(ledger, {alice: "done", both: "done"}), daemon, what="clips done")
        await until(
            lambda: len(emulator.callbacks_sent) >= 6,
            daemon,
            what="3 copies of each callback",
        )
        await until(all_sent(ledger, 6), daemon, what="3 alerts x 2 sinks sent")

    # Every copy was answered 200 (a repeat is acknowledged) and changed nothing.
    assert Counter(c.task_id for c in emulator.callbacks_sent) == Counter(
        {r.task_id: 3 for r in emulator.received}
    )
    assert all(c.status == 200 for c in emulator.callbacks_sent)
    rows = await outbox(ledger)
    assert Counter((r["clip_id"], r["person"], r["sink"]) for r in rows) == Counter(
        (clip, person, sink)
        for clip, person in ((alice, "Alice"), (both, "Alice"), (both, "Bob"))
        for sink in ("log", "webhook")
    )
    ids = await expected_ids(ledger, [(alice, "Alice"), (both, "Alice"), (both, "Bob")])
    assert receiver.delivered_ids() == Counter(ids)
    assert len(receiver.hits) == 3
    for clip in (alice, both):
        kinds = await query(ledger, "SELECT kind FROM events WHERE clip_id=? ORDER BY id", clip)
        assert [row["kind"] for row in kinds][-2:] == ["analyzed", "done"], kinds
        assert [row["kind"] for row in kinds].count("analyzed") == 1, kinds


# ---- the operator commands beside a running daemon -----------------------------------------


def _not_a_video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a video\n" * 200)
    return path


async def test_status_and_retry_work_on_the_ledger_of_a_running_daemon(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    broken_path = await asyncio.to_thread(_not_a_video, tmp_path / "clips" / "back-3.mp4")

    async with edged_running(config) as daemon:
        good = await queue_clip(ledger, await clip_factory("back-1.mp4", title="Alice"))
        empty = await queue_clip(ledger, await clip_factory("back-2.mp4"))
        broken = await queue_clip(ledger, broken_path)
        wanted = {good: "done", empty: "done", broken: "failed"}
        await until(reached(ledger, wanted), daemon, what="two clips done, one failed")
        assert uploads_of(emulator, broken) == [], "a file that is no video is never uploaded"

        code, out, err = await run_edged("status", "-c", str(config))
        assert code == 0, err
        assert "clips: done 2, failed 1" in out, out
        assert f"camera {CAMERA}: done 2, failed 1" in out, out
        assert f"clip {broken} ({CAMERA}):" in out and "back-3.mp4" in out, out

        code, out, err = await run_edged("retry", "-c", str(config))
        assert code == 2 and "CLIP_ID" in err, (code, out, err)

        code, out, err = await run_edged("retry", "-c", str(config), str(good))
        assert code == 0 and "requeued 0 clips" in out, (code, out, err)
        assert str(good) in err  # said to be left as it is

        # The recording is readable now (say a share came back): retry sends it.
        await asyncio.to_thread(make_clip, broken_path, seconds=1.0, title="Bob")
        code, out, err = await run_edged("retry", "-c", str(config), str(broken))
        assert code == 0 and f"requeued 1 clips: [{broken}]" in out, (code, out, err)
        await until(reached(ledger, {broken: "done"}), daemon, what="the retried clip done")
        await until(all_sent(ledger, 4), daemon, what="Alice's and Bob's alerts sent")

        code, out, err = await run_edged("status", "-c", str(config))
        assert code == 0 and "clips: done 3" in out, (code, out, err)
        assert "alerts: sent 4" in out, out

    assert len(uploads_of(emulator, broken)) == 1
    retried = await query(ledger, "SELECT attempts FROM clips WHERE id=?", broken)
    assert retried == [{"attempts": 1}]  # attempts start again from zero after a retry
    assert {hit.alert["person"] for hit in receiver.delivered} == {"Alice", "Bob"}
