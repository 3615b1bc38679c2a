"""`edged run` under faults: lost and late callbacks, an API answering 503, a webhook that is
down, SIGTERM and kill -9 in the middle of uploads. Helpers are in tests/support/."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from edged.config.model import parse_config
from edged.emulator import Emulator
from edged.ledger.store import Ledger
from edged.service.daemon import SHUTDOWN_GRACE_S, run_daemon
from tests.support.edged import (
    callbacks_held,
    clip_id_of,
    daemon_config,
    edged_running,
)
from tests.support.edged_process import EdgedProcess, StartEdged
from tests.support.emulator import uploads_of
from tests.support.ledger import (
    all_sent,
    clip_states,
    expected_ids,
    outbox,
    query,
    queue_clip,
    reached,
)
from tests.support.waiting import until
from tests.support.webhook import Receiver


async def events(ledger: Ledger | EdgedProcess, clip_id: int) -> list[str]:
    rows = await query(ledger, "SELECT kind FROM events WHERE clip_id=? ORDER BY id", clip_id)
    return [row["kind"] for row in rows]


# ---- callbacks that never come, or come late ------------------------------------------------


async def test_a_lost_callback_expires_the_clip_and_it_is_resubmitted(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    emulator.options.drop_callbacks = True
    config = daemon_config(tmp_path, emulator.url, receiver.url, result_timeout="2s")
    clip = await queue_clip(ledger, await clip_factory("drive-1.mp4", title="Alice"))
    async with edged_running(config) as daemon:
        await until(lambda: len(uploads_of(emulator, clip)) == 1, daemon, what="the upload")
        emulator.options.drop_callbacks = False  # the first one's callback is already lost
        await until(reached(ledger, {clip: "done"}), daemon, what="the resubmitted clip done")
        await until(all_sent(ledger, 2), daemon, what="Alice's alerts sent")

    first, second = uploads_of(emulator, clip)
    assert first.task_id != second.task_id
    assert [c.task_id for c in emulator.callbacks_sent] == [second.task_id]
    kinds = await events(ledger, clip)
    assert kinds[:4] == ["queued", "uploading", "submitted", "expired"], kinds
    assert kinds.count("uploading") == 2 and kinds[-1] == "done", kinds
    stored = await asyncio.to_thread(ledger.clips.get, clip)
    assert stored is not None and stored.attempts == 2 and stored.task_id == second.task_id
    assert receiver.delivered_ids() == Counter(await expected_ids(ledger, [(clip, "Alice")]))


async def test_a_clip_whose_callback_never_comes_fails_after_max_attempts(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    emulator.options.drop_callbacks = True
    config = daemon_config(tmp_path, emulator.url, receiver.url, max_attempts=2)
    clip = await queue_clip(ledger, await clip_factory("drive-2.mp4", title="Alice"))
    async with edged_running(config) as daemon:
        await until(reached(ledger, {clip: "failed"}), daemon, what="the clip to fail")

    stored = await asyncio.to_thread(ledger.clips.get, clip)
    assert stored is not None and stored.attempts == 2
    assert stored.last_error is not None and "result_timeout" in stored.last_error
    assert len(uploads_of(emulator, clip)) == 2
    kinds = await events(ledger, clip)
    assert kinds.count("expired") == 1 and kinds[-1] == "failed", kinds
    assert await outbox(ledger) == [] and receiver.hits == []


async def test_a_late_callback_of_an_earlier_attempt_changes_nothing(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    emulator.options.late_callback_s = 0.2  # after the condition below: late it is
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    clip = await queue_clip(ledger, await clip_factory("drive-3.mp4", title="Bob"))

    async def ready(delivery: Any) -> bool:
        """The first upload's callback leaves only once the clip was expired (after
        callback.result_timeout, 2 s), sent again and done: late by a condition, not by a
        margin over the expirer. Every other callback leaves once its task id is committed."""
        stored = await asyncio.to_thread(ledger.clips.get, clip_id_of(delivery))
        task = stored.task_id if stored is not None else None
        if delivery.task_id == uploads_of(emulator, clip)[0].task_id:
            done = stored is not None and stored.state == "done"
            return done and task is not None and task != delivery.task_id
        return task == delivery.task_id

    async with edged_running(config) as daemon, callbacks_held(emulator, ready):
        await until(lambda: len(uploads_of(emulator, clip)) == 1, daemon, what="the upload")
        emulator.options.late_callback_s = 0.0
        late_task = uploads_of(emulator, clip)[0].task_id
        await until(reached(ledger, {clip: "done"}), daemon, what="the resubmitted clip done")

        def late_settled() -> bool:
            late = [c for c in emulator.callbacks_sent if c.task_id == late_task]
            return any(c.status == 200 for c in late) or len(late) == 4  # 1 + 3 retries

        await until(late_settled, daemon, what="the late callback and its retries")
        await until(all_sent(ledger, 2), daemon, what="Bob's alerts sent")

    _, second = uploads_of(emulator, clip)
    late = [c.status for c in emulator.callbacks_sent if c.task_id == late_task]
    assert late == [200]  # it reached edged: the clip has its result, nothing changes
    stored = await asyncio.to_thread(ledger.clips.get, clip)
    result = await asyncio.to_thread(ledger.results.result, clip)
    assert stored is not None and stored.state == "done" and stored.task_id == second.task_id
    assert result is not None and result.task_id == second.task_id
    assert [(r["person"], r["sink"]) for r in await outbox(ledger)] == [
        ("Bob", "log"),
        ("Bob", "webhook"),
    ]
    assert receiver.delivered_ids() == Counter(await expected_ids(ledger, [(clip, "Bob")]))


# ---- outages --------------------------------------------------------------------------------


async def test_api_503s_delay_the_backlog_and_lose_nothing(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    emulator.options.fail_next = [503] * 4  # every clip's first try; Retry-After: 1
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    titles = ("Alice", "Bob", None, "Alice and Bob")
    clips = [
        await queue_clip(ledger, await clip_factory(f"lane-{n}.mp4", title=title))
        for n, title in enumerate(titles)
    ]
    async with edged_running(config) as daemon:
        done = dict.fromkeys(clips, "done")
        await until(reached(ledger, done), daemon, what="the backlog to drain", timeout_s=30)
        await until(all_sent(ledger, 8), daemon, what="4 alerts x 2 sinks sent")

    assert [r.status for r in emulator.received] == [503] * 4 + [200] * 4
    for clip in clips:  # a 503 is answered before the req part is read: count it in the ledger
        assert [r.status for r in uploads_of(emulator, clip)] == [200]
        assert (await events(ledger, clip)).count("retry_wait") == 1
    attempts = await query(ledger, "SELECT attempts FROM clips ORDER BY id")
    # The outage is not the clips' fault: only the accepted upload counts as an attempt.
    assert [row["attempts"] for row in attempts] == [1, 1, 1, 1]
    assert len(emulator.callbacks_sent) == 4
    pairs = [(clips[0], "Alice"), (clips[1], "Bob"), (clips[3], "Alice"), (clips[3], "Bob")]
    assert receiver.delivered_ids() == Counter(await expected_ids(ledger, pairs))


async def test_an_api_outage_longer_than_the_retries_fails_no_clip(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    # 503 is transient (API.md): an outage outlasting api.max_attempts tries must leave the
    # clips waiting, not `failed`, which DESIGN.md keeps for permanent faults.
    emulator.options.error_rate = 1.0
    config = daemon_config(tmp_path, emulator.url, receiver.url, max_attempts=2)
    clips = [
        await queue_clip(ledger, await clip_factory(f"road-{n}.mp4", title=title))
        for n, title in enumerate(("Alice", None))
    ]
    async with edged_running(config) as daemon:

        async def each_refused_twice() -> bool:
            rows = await query(
                ledger,
                "SELECT c.id, c.state, (SELECT COUNT(*) FROM events e WHERE e.clip_id = c.id"
                " AND e.kind IN ('retry_wait', 'failed')) AS refused FROM clips c",
            )
            return all(row["refused"] >= 2 and row["state"] != "uploading" for row in rows)

        await until(each_refused_twice, daemon, what="two refused tries of every clip")
        emulator.options.error_rate = 0.0  # the service is back
        rows = await query(ledger, "SELECT id, state, last_error FROM clips ORDER BY id")
        failed = [row for row in rows if row["state"] == "failed"]
        assert failed == [], "clips failed for a transient outage"
        done = dict.fromkeys(clips, "done")
        await until(reached(ledger, done), daemon, what="clips done", timeout_s=45)
        await until(all_sent(ledger, 2), daemon, what="Alice's alerts sent")
    assert all(r.status == 503 for r in emulator.received[:4])


async def test_webhook_outage_delays_its_alert_but_not_the_log_sink(
    emulator: Emulator,
    clip_factory,
    receiver: Receiver,
    ledger: Ledger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.WARNING, logger="edged.alert")
    receiver.fail_next = 2
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    clip = await queue_clip(ledger, await clip_factory("dock-1.mp4", title="Alice"))
    async with edged_running(config) as daemon:

        async def log_sent_webhook_pending() -> bool:
            rows = {row["sink"]: row for row in await outbox(ledger)}
            log, hook = rows.get("log"), rows.get("webhook")
            return (
                log is not None
                and log["state"] == "sent"
                and hook is not None
                and hook["state"] == "pending"
                and hook["attempts"] >= 1
            )

        await until(log_sent_webhook_pending, daemon, what="log sent, webhook pending")
        await until(all_sent(ledger, 2), daemon, what="the webhook alert delivered at last")

    [alert_id] = await expected_ids(ledger, [(clip, "Alice")])
    assert [hit.status for hit in receiver.hits] == [503, 503, 200]
    assert {hit.headers["webhook-id"] for hit in receiver.hits} == {alert_id}
    assert len({hit.body for hit in receiver.hits}) == 1  # the same payload each time
    assert all(hit.signature_ok for hit in receiver.hits)
    assert receiver.delivered_ids() == Counter([alert_id])
    attempts = {row["sink"]: row["attempts"] for row in await outbox(ledger)}
    assert attempts == {"log": 1, "webhook": 3}
    logged = [r for r in caplog.records if r.name == "edged.alert"]
    assert len(logged) == 1 and alert_id in logged[0].getMessage()


async def test_cooldown_holds_when_a_retried_alert_is_delivered_after_a_later_one(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    # Alice seen twice on one camera within the cooldown: one alert per sink, judged as it
    # happened, even when the webhook refuses the first one until after the second exists.
    config = daemon_config(tmp_path, emulator.url, receiver.url, cooldown="5m")
    first = await queue_clip(ledger, await clip_factory("stair-1.mp4", title="Alice"))
    receiver.failing_clips.add(first)

    async def rows() -> dict[tuple[int, str], dict[str, Any]]:
        return {(row["clip_id"], row["sink"]): row for row in await outbox(ledger)}

    async with edged_running(config) as daemon:

        async def first_refused() -> bool:
            row = (await rows()).get((first, "webhook"))
            return row is not None and row["attempts"] >= 1

        await until(first_refused, daemon, what="the webhook to refuse the first alert")
        refused = (await rows())[(first, "webhook")]["attempts"]
        second = await queue_clip(ledger, await clip_factory("stair-2.mp4", title="Alice"))

        async def second_judged() -> bool:
            now = await rows()
            hook = now.get((second, "webhook"))
            if hook is not None and hook["state"] != "pending":
                return True
            return bool(now[(first, "webhook")]["attempts"] > refused)  # it had its chance

        await until(second_judged, daemon, what="the second alert judged by the webhook sink")
        receiver.failing_clips.clear()

        async def settled() -> bool:
            now = await rows()
            return len(now) == 4 and all(row["state"] != "pending" for row in now.values())

        await until(settled, daemon, what="every alert sent or suppressed")

    states = {key: row["state"] for key, row in (await rows()).items()}
    assert states[(first, "log")] == "sent" and states[(second, "log")] == "suppressed"
    delivered = [hit.alert["clip"]["id"] for hit in receiver.delivered]
    assert len(delivered) == 1, f"two Alice alerts within the cooldown: {states}"


# ---- signals and crashes of a real `edged run` ----------------------------------------------


async def test_an_upload_that_outlasts_the_grace_period_is_given_back(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    emulator.options.latency_s = 30.0  # longer than the grace period below
    config = parse_config(
        await asyncio.to_thread(daemon_config(tmp_path, emulator.url, receiver.url).read_text)
    )
    clip = await queue_clip(ledger, await clip_factory("yard-9.mp4", title="Alice"))
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(config, shutdown=stop, grace_s=0.5))
    await until(reached(ledger, {clip: "uploading"}), daemon, what="the clip mid-upload")
    stop.set()
    assert await asyncio.wait_for(daemon, 10) == 0
    stored = await asyncio.to_thread(ledger.clips.get, clip)
    assert stored is not None and stored.state == "queued", stored
    assert (await events(ledger, clip))[-1] == "released"

    emulator.options.latency_s = 0.0
    async with edged_running(tmp_path / "config.yaml") as again:
        await until(reached(ledger, {clip: "done"}), again, what="the clip done after a restart")


async def test_the_result_of_an_upload_finished_during_shutdown_is_not_refused(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    # The grace period lets the upload finish; its result must then find edged listening,
    # or the clip waits callback.result_timeout and is uploaded (and paid for) again.
    emulator.options.latency_s = 1.0
    config = parse_config(
        await asyncio.to_thread(daemon_config(tmp_path, emulator.url, receiver.url).read_text)
    )
    clip = await queue_clip(ledger, await clip_factory("gate-9.mp4", title="Alice"))
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(config, shutdown=stop))
    await until(reached(ledger, {clip: "uploading"}), daemon, what="the clip mid-upload")
    stop.set()
    assert await asyncio.wait_for(daemon, SHUTDOWN_GRACE_S + 10) == 0
    [upload] = uploads_of(emulator, clip)
    assert upload.status == 200  # finished within the grace period

    def callback_settled() -> bool:
        sent = [c for c in emulator.callbacks_sent if c.task_id == upload.task_id]
        return any(c.status == 200 for c in sent) or len(sent) == 4  # 1 + 3 retries

    await until(callback_settled, None, what="the result callback and its retries")
    sent = [c for c in emulator.callbacks_sent if c.task_id == upload.task_id]
    assert any(c.status == 200 for c in sent), [c.error or c.status for c in sent]
    stored = await asyncio.to_thread(ledger.clips.get, clip)
    assert stored is not None and stored.state in ("analyzed", "done"), stored


async def _queue_three(ledger: Ledger, clip_factory: Any) -> tuple[int, int, int]:
    alice = await queue_clip(ledger, await clip_factory("hall-1.mp4", title="Alice"))
    bob = await queue_clip(ledger, await clip_factory("hall-2.mp4", title="Bob"))
    nobody = await queue_clip(ledger, await clip_factory("hall-3.mp4"))
    return alice, bob, nobody


async def _uploading(ledger: Ledger | EdgedProcess) -> list[int]:
    return [clip for clip, state in (await clip_states(ledger)).items() if state == "uploading"]


async def _restart_until_all_done(
    edged_run: StartEdged,
    config: Path,
    clips: tuple[int, int, int],
    receiver: Receiver,
) -> None:
    """Run edged again until every clip is done and both alerts reached both sinks; then
    check that the receiver got each alert id exactly once."""
    alice, bob, _ = clips
    again = await edged_run(config)
    done = dict.fromkeys(clips, "done")
    await again.until(reached(again, done), "every clip done after the restart")
    await again.until(all_sent(again, 4), "2 alerts x 2 sinks sent")
    code = await again.stop(signal.SIGTERM)
    err = again.log()
    assert code == 0, err
    ids = await expected_ids(again, [(alice, "Alice"), (bob, "Bob")])
    assert receiver.delivered_ids() == Counter(ids)


async def test_sigterm_mid_upload_exits_0_and_a_restart_finishes_every_clip(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, edged_run, tmp_path: Path
):
    emulator.options.latency_s = 3.0  # uploads stay in flight for a while
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    clips = await _queue_three(ledger, clip_factory)
    first = await edged_run(config)
    await first.until(lambda: _uploading(first), "a clip mid-upload")
    in_flight = await _uploading(first)
    assert in_flight

    code = await first.stop(signal.SIGTERM, timeout_s=SHUTDOWN_GRACE_S + 10)
    err = first.log()
    assert code == 0, err
    states = await clip_states(first)
    assert "uploading" not in states.values(), states
    for clip in in_flight:  # finished within the grace period, not cut off
        assert states[clip] in ("submitted", "analyzed", "done"), states
        assert [r.status for r in uploads_of(emulator, clip)] == [200]

    emulator.options.latency_s = 0.0
    await _restart_until_all_done(edged_run, config, clips, receiver)


async def test_kill_9_mid_upload_loses_nothing_and_keeps_the_ledger_intact(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, edged_run, tmp_path: Path
):
    # The killed uploads never get an answer, so only edged's own resume can finish them.
    emulator.options.latency_s = 60.0
    config = daemon_config(tmp_path, emulator.url, receiver.url)
    clips = await _queue_three(ledger, clip_factory)
    first = await edged_run(config)
    await first.until(lambda: _uploading(first), "a clip mid-upload")

    code = await first.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    killed = await _uploading(first)
    assert killed, "the kill must catch a clip mid-upload"

    emulator.options.latency_s = 0.0
    await _restart_until_all_done(edged_run, config, clips, receiver)
    for clip in killed:
        assert "resumed" in await events(first, clip)
    assert await first.rows("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
