"""The upload path against the emulator over HTTP: envelopes, retries, auth, limits, req part,
and `edged upload` surviving kill -9."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import pytest

from edged.clip import ClipState, NewClip
from edged.emulator import ENVELOPES, Emulator
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.upload.api import AnalysisRequest, ApiClient, ApiError, Failure
from edged.upload.uploader import Outcome, Uploader, UploadSettings
from tests.support.edged import run_edged, start_edged, write_config
from tests.support.emulator import REQUEST
from tests.support.waiting import eventually


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
async def test_each_envelope_variant_is_parsed(emulator: Emulator, clip_factory, envelope: str):
    emulator.options.envelope = envelope
    clip = await clip_factory("alice.mp4", title="Alice")
    async with ApiClient(emulator.url, "k") as api:
        ack = await api.upload_file(clip, REQUEST)
        result = await api.upload_file(clip, REQUEST, sync=True)
        url_ack = await api.upload_url("https://example.com/v.mp4", REQUEST)
    assert ack.ok and ack.task_id, ack
    assert url_ack.ok and url_ack.task_id
    assert result.ok and result.text and '"Alice"' in result.text
    assert result.tokens.total is not None


async def test_auth_and_permanent_errors_are_classified(emulator: Emulator, clip_factory):
    emulator.options.api_key = "right-key"
    clip = await clip_factory()
    async with ApiClient(emulator.url, "wrong-key") as api:
        with pytest.raises(ApiError) as refused:
            await api.upload_file(clip, REQUEST)
    assert refused.value.failure is Failure.PAUSED and refused.value.status == 401
    assert "api.api_key" in str(refused.value)
    async with ApiClient(emulator.url, "right-key") as api:
        with pytest.raises(ApiError) as bad:
            await api.upload_file(clip, AnalysisRequest(user_prompt="x", system_prompt="y"))
    assert bad.value.failure is Failure.PERMANENT and bad.value.status == 400


async def test_error_envelope_inside_http_200_is_an_error(emulator: Emulator, clip_factory):
    emulator.options.error_envelope_rate = 1.0
    async with ApiClient(emulator.url, "k") as api:
        with pytest.raises(ApiError) as failed:
            await api.upload_file(await clip_factory(), REQUEST)
    assert failed.value.status == 200 and failed.value.transient


def _uploader(tmp_path: Path, api: ApiClient, clock, **settings) -> tuple[AsyncLedger, Uploader]:
    db = AsyncLedger(Ledger(tmp_path / "state", clock=clock))
    defaults = dict(
        mode="async",
        public_url="http://127.0.0.1:9",
        max_attempts=5,
        max_file_bytes=10**9,
        max_duration_s=7200,
        backoff_base_s=0.5,
    )
    uploader = Uploader(
        db,
        api,
        REQUEST,
        UploadSettings(**{**defaults, **settings}),
        rng=random.Random(3),
        clock=clock,
    )
    return db, uploader


async def test_429_and_503_are_retried_honouring_retry_after(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    emulator.options.fail_next = [503, 429]
    emulator.options.retry_after_s = 7
    now = [1000.0]
    async with ApiClient(emulator.url, "k") as api:
        db, uploader = _uploader(tmp_path, api, lambda: now[0])
        clip, _ = await db.call(db.ledger.clips.add, NewClip("cam", await clip_factory(), 1))
        outcomes = []
        for _ in range(3):
            taken = await db.call(db.ledger.uploads.take_for_upload)
            assert taken is not None, "the clip must be due again once its retry time passed"
            outcomes.append(await uploader.upload(taken))
            stored = await db.call(db.ledger.clips.get, clip.id)
            if outcomes[-1] is Outcome.RETRY:
                assert stored.next_attempt_at - now[0] >= 7, "Retry-After is a floor"
                assert await db.call(db.ledger.uploads.take_for_upload) is None, (
                    "not due before that"
                )
                now[0] = stored.next_attempt_at
        await db.aclose()
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.SUBMITTED]
    assert [r.status for r in emulator.received] == [503, 429, 200]
    # The service being unavailable is not the clip's fault: only the accepted upload counts.
    assert stored.state is ClipState.SUBMITTED and stored.attempts == 1 and stored.failures == 0


async def test_the_backlog_is_sent_as_soon_as_the_service_is_back(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    """Clips that waited out an outage are due again at the first accepted upload, not when
    their own backoff runs out; a clip that failed before the outage keeps its backoff."""
    now = [1000.0]
    async with ApiClient(emulator.url, "k") as api:
        db, uploader = _uploader(tmp_path, api, lambda: now[0], backoff_base_s=60.0)
        earlier, _ = await db.call(db.ledger.clips.add, NewClip("cam", await clip_factory(), 1))
        emulator.options.error_envelope_rate = 1.0  # the service answered: the clip's failure
        taken = await db.call(db.ledger.uploads.take_for_upload)
        assert await uploader.upload(taken) is Outcome.RETRY
        emulator.options.error_envelope_rate = 0.0
        now[0] += 1
        emulator.options.fail_next = [503, 503, 503]
        waiting = []
        for name in ("a.mp4", "b.mp4", "c.mp4"):
            clip, _ = await db.call(
                db.ledger.clips.add, NewClip("cam", await clip_factory(name), 1)
            )
            waiting.append(clip.id)
            taken = await db.call(db.ledger.uploads.take_for_upload, clip.id)
            assert await uploader.upload(taken) is Outcome.RETRY
        assert await db.call(db.ledger.uploads.take_for_upload) is None, "all backing off"
        # The service is back: a new clip comes and is accepted, before any backoff timer
        # (the seeded delays are all over 10 s) has run out.
        before = await db.call(db.ledger.clips.get, earlier.id)
        now[0] += 1
        fresh, _ = await db.call(
            db.ledger.clips.add, NewClip("cam", await clip_factory("d.mp4"), 1)
        )
        taken = await db.call(db.ledger.uploads.take_for_upload)
        assert taken is not None and taken.id == fresh.id
        assert await uploader.upload(taken) is Outcome.SUBMITTED
        due = [await db.call(db.ledger.uploads.take_for_upload) for _ in range(3)]
        assert [c.id for c in due if c is not None] == waiting
        assert await db.call(db.ledger.uploads.take_for_upload) is None
        kept = await db.call(db.ledger.clips.get, earlier.id)
        assert kept.state is ClipState.RETRY_WAIT
        assert kept.next_attempt_at == before.next_attempt_at > now[0]
        await db.aclose()


async def test_oversize_and_overlong_clips_are_refused_before_any_byte_is_sent(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    async with ApiClient(emulator.url, "k") as api:
        db, small = _uploader(tmp_path, api, time.time, max_file_bytes=1000)
        first, _ = await db.call(
            db.ledger.clips.add, NewClip("cam", await clip_factory("a.mp4"), 1)
        )
        assert (
            await small.upload(await db.call(db.ledger.uploads.take_for_upload)) is Outcome.FAILED
        )
        _, short = _uploader(tmp_path, api, time.time, max_duration_s=0.5)
        second, _ = await db.call(
            db.ledger.clips.add, NewClip("cam", await clip_factory("b.mp4", seconds=2), 1)
        )
        assert (
            await short.upload(await db.call(db.ledger.uploads.take_for_upload)) is Outcome.FAILED
        )
        failed = [await db.call(db.ledger.clips.get, c.id) for c in (first, second)]
        await db.aclose()
    assert "api.max_file_bytes" in failed[0].last_error
    assert "api.max_duration" in failed[1].last_error
    assert emulator.received == []


async def test_req_part_carries_exactly_the_configured_prompts_flags_and_persons(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    image = tmp_path / "bob.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    config = write_config(
        tmp_path,
        emulator.url,
        api_extra="  user_prompt: Watch the gate.\n  system_prompt: You guard a farm.\n"
        "  thinking: true\n  qa: true\n  reasoning_effort: '3'\n",
        extra=f"persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
        f"  - name: Bob\n    image: {image}\n",
    )
    code, out, err = await run_edged(
        "upload", "-c", str(config), "--sync", str(await clip_factory("bob.mp4"))
    )
    assert code == 0, err
    req = emulator.received[-1].req
    assert req["system_prompt"] == "You guard a farm."
    assert req["user_prompt"].startswith("Watch the gate.")
    assert "```json" in req["user_prompt"] and '"Alice"' in req["user_prompt"]
    assert (req["thinking"], req["qa"], req["reasoning_effort"]) == (True, True, "3")
    assert "callback" not in req  # sync mode
    alice, bob = req["persons"]
    assert alice == {"name": "Alice", "url": "https://example.com/alice.jpg"}
    assert bob["name"] == "Bob" and bob["url"].startswith("http://127.0.0.1:")
    assert "/persons/" in bob["url"] and bob["url"].endswith(".png")
    assert "Bob: present" in out and "Alice: absent" in out


async def test_401_stops_upload_with_a_clear_message_and_keeps_the_queue(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    emulator.options.api_key = "the-real-key"
    config = write_config(tmp_path, emulator.url, api_key="a-wrong-key")
    code, _, err = await run_edged("upload", "-c", str(config), "--wait", str(await clip_factory()))
    assert code == 1
    assert "API key was refused" in err and "a-wrong-key" not in err
    ledger = Ledger(tmp_path / "state")
    [clip] = ledger.clips.in_state(ClipState.QUEUED)
    assert clip.attempts == 0
    ledger.close()


async def test_kill_9_during_upload_then_rerun_ends_done(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    emulator.options.latency_s = 30  # the first upload hangs until it is killed
    config = write_config(
        tmp_path,
        emulator.url,
        extra="persons:\n  - name: Alice\n    url: https://example.com/a.jpg\n",
    )
    clip = await clip_factory("alice.mp4", title="Alice")
    process = await start_edged("upload", "-c", str(config), "--wait", str(clip))
    ledger_path = tmp_path / "state" / "ledger.sqlite3"

    def uploading() -> bool:
        if not ledger_path.exists():
            return False
        ledger = Ledger(tmp_path / "state")
        try:
            return bool(ledger.clips.in_state(ClipState.UPLOADING))
        finally:
            ledger.close()

    await eventually(uploading, what="the clip to be mid-upload")
    process.send_signal(signal.SIGKILL)
    await process.wait()
    emulator.options.latency_s = 0
    code, out, err = await run_edged("upload", "-c", str(config), "--wait", str(clip))
    assert code == 0, err
    assert "found in the ledger" in out and ": done" in out
    ledger = Ledger(tmp_path / "state")
    [done] = ledger.clips.in_state(ClipState.DONE)
    result = ledger.results.result(done.id)
    ledger.close()
    assert done.attempts == 2 and result is not None and "Alice" in result.text
    # The killed request never completed, so the service analysed the clip once.
    assert [r.file_name for r in emulator.received] == ["alice.mp4"]
    assert "Alice: present" in out
    assert (
        emulator.received[-1]
        .req["callback"]
        .endswith(f"/callbacks/{done.id}/{done.callback_token}")
    )


async def test_uploads_pause_on_auth_failure(emulator: Emulator, clip_factory, tmp_path: Path):
    emulator.options.api_key = "right"
    async with ApiClient(emulator.url, "wrong") as api:
        db, uploader = _uploader(tmp_path, api, time.time, auth_retry_s=3600)
        for name in ("a.mp4", "b.mp4", "c.mp4"):
            await db.call(db.ledger.clips.add, NewClip("cam", await clip_factory(name), 1))
        runner = asyncio.create_task(uploader.run())
        try:
            await eventually(lambda: uploader.auth_paused, what="uploads to pause")
            await eventually(lambda: len(emulator.received) >= 1, what="one refused upload")
            queued = await db.call(db.ledger.clips.in_state, ClipState.QUEUED)
            # A stop while paused ends the workers at once, not after the pause.
            uploader.stop_taking()
            await asyncio.wait_for(asyncio.shield(runner), 5)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await db.aclose()
    # Two workers may each have been refused once; no retry storm, nothing lost.
    assert len(emulator.received) <= 2
    assert len(queued) == 3 and all(c.attempts == 0 for c in queued)


async def test_file_deleted_before_upload_fails_as_source_gone(
    emulator: Emulator, clip_factory, tmp_path: Path
):
    async with ApiClient(emulator.url, "k") as api:
        db, uploader = _uploader(tmp_path, api, time.time)
        path = await clip_factory("gone.mp4")
        clip, _ = await db.call(db.ledger.clips.add, NewClip("cam", path, 1))
        await asyncio.to_thread(path.unlink)
        outcome = await uploader.upload(await db.call(db.ledger.uploads.take_for_upload))
        stored = await db.call(db.ledger.clips.get, clip.id)
        await db.aclose()
    assert outcome is Outcome.FAILED and stored.state is ClipState.FAILED
    assert stored.last_error.startswith("source gone")
    assert emulator.received == []
