"""The service as it documents itself, against a real `edged run`: the caption callback
shape end to end, an account out of credit (0402) pausing and resuming the queue, a
duplicate (0409) resolved by the ledger, 0001 retried once."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from edged.emulator import Emulator
from tests.support.edged import folder_config, run_edged
from tests.support.edged_process import running

pytestmark = pytest.mark.timeout(150)

#: The emulator refuses with 0402 until the test has seen the pause; probes every PROBE.
PROBE = "  pause_probe_interval: 2s\n"


async def test_a_whole_run_with_caption_callbacks_raises_every_alert(
    tmp_path: Path, emulator: Emulator
):
    emulator.options.callback_shape = "caption"
    async with running(folder_config(tmp_path, emulator.url)) as edged:
        for number in range(4):
            await edged.add_clip(f"gate-{number:03d}.mp4", title="Alice")

        async def all_done() -> bool:
            rows = await edged.rows("SELECT state FROM clips")
            return len(rows) == 4 and all(row["state"] == "done" for row in rows)

        await edged.until(all_done, "every clip done")
        assert all("status" in record.body for record in emulator.callbacks_sent)
        alerts = await edged.rows("SELECT clip_id, person, state FROM alerts")
        assert len(alerts) == 4 and {a["person"] for a in alerts} == {"Alice"}
        tokens = await edged.rows("SELECT tokens_total FROM results")
        assert all(row["tokens_total"] for row in tokens)
        assert (await edged.rows("SELECT COUNT(*) AS n FROM results"))[0]["n"] == 4


async def _health(edged) -> dict:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{edged.metrics}/healthz") as answer,
    ):
        return json.loads(await answer.text())


async def test_out_of_credit_pauses_the_queue_and_it_resumes_by_itself(
    tmp_path: Path, emulator: Emulator
):
    emulator.options.update({"refuse_code": "0402"})
    async with running(folder_config(tmp_path, emulator.url, api=PROBE)) as edged:
        for number in range(3):
            await edged.add_clip(f"gate-{number:03d}.mp4")

        async def paused() -> bool:
            return (await _health(edged)).get("api", {}).get("uploads_paused") is not None

        await edged.until(paused, "/healthz to report the pause")
        health = await _health(edged)
        assert health["status"] == "unhealthy" and "uploads paused: no_credit" in health["reasons"]
        assert "out of credit" in health["api"]["uploads_paused"]["advice"]
        paused_lines = [line for line in edged.lines() if "uploads paused (no_credit)" in line]
        assert sum("CRITICAL" in line for line in paused_lines) == 1  # later probes: ERROR
        code, out, _ = await run_edged("status", "-c", str(edged.config))
        assert code == 0 and "UPLOADS PAUSED (no_credit)" in out
        # Probes while the credit is out: each refused, no clip failed, none counted.
        await edged.until(
            lambda: sum(r.error == "not enough points" for r in emulator.received) >= 3,
            "a few probes refused",
        )
        # Between two probes every clip is back in the queue, none charged an attempt.

        async def all_queued() -> bool:
            rows = await edged.rows("SELECT state FROM clips")
            return all(row["state"] == "queued" for row in rows)

        await edged.until(all_queued, "every clip queued between two probes")
        rows = await edged.rows("SELECT state, attempts FROM clips")
        assert all(row["attempts"] == 0 for row in rows), rows
        emulator.options.update({"refuse_code": None})  # the account is topped up

        async def all_done() -> bool:
            rows = await edged.rows("SELECT state FROM clips")
            return len(rows) == 3 and all(row["state"] == "done" for row in rows)

        await edged.until(all_done, "every clip done once the credit is back", timeout_s=90)
        assert (await _health(edged))["status"] == "ok"
        assert edged.logged("uploads resumed") == 1
        code, out, _ = await run_edged("status", "-c", str(edged.config))
        assert "PAUSED" not in out
        failed = await edged.rows("SELECT COUNT(*) AS n FROM clips WHERE state='failed'")
        assert failed[0]["n"] == 0


async def test_a_duplicate_waits_for_the_earlier_uploads_result(tmp_path: Path, emulator: Emulator):
    """Attempt 1 was accepted but its result is late; the clip is sent again and the service
    answers 0409 (it has it). The clip waits instead of failing, and attempt 1's result,
    when it comes, completes it."""
    emulator.options.callback_faults = ["drop"]
    async with running(
        folder_config(tmp_path, emulator.url, callback="  result_timeout: 4s\n")
    ) as edged:
        await edged.add_clip("gate-000.mp4")

        async def submitted() -> bool:
            rows = await edged.rows("SELECT state FROM clips")
            return bool(rows) and rows[0]["state"] == "submitted"

        await edged.until(submitted, "the first upload accepted")
        emulator.options.update({"refuse_code": "0409"})

        async def duplicate_seen() -> bool:
            return bool(await edged.rows("SELECT 1 FROM events WHERE kind='duplicate'"))

        await edged.until(duplicate_seen, "the resubmission answered 0409")
        clip = (await edged.rows("SELECT * FROM clips"))[0]
        assert clip["state"] in ("submitted", "expired", "uploading"), clip
        first = (await edged.rows("SELECT * FROM callback_tokens WHERE attempt=1"))[0]
        url = f"{edged.url}/callbacks/{clip['id']}/{first['token']}"
        body = {"status": 0, "task_id": first["task_id"], "data": {"text": "Alice at the gate."}}
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as answer:
            assert answer.status == 200

        async def done() -> bool:
            return bool(await edged.rows("SELECT 1 FROM clips WHERE state='done'"))

        await edged.until(done, "the clip done with attempt 1's result")
        results = await edged.rows("SELECT task_id, text FROM results")
        assert results == [{"task_id": first["task_id"], "text": "Alice at the gate."}]


async def test_0001_is_retried_once_then_the_clip_fails_with_the_reason(
    tmp_path: Path, emulator: Emulator
):
    emulator.options.update({"refuse_code": "0001"})
    async with running(folder_config(tmp_path, emulator.url)) as edged:
        await edged.add_clip("gate-000.mp4")

        async def failed() -> bool:
            return bool(await edged.rows("SELECT 1 FROM clips WHERE state='failed'"))

        await edged.until(failed, "the clip failed", timeout_s=60)
        clip = (await edged.rows("SELECT * FROM clips"))[0]
        assert clip["attempts"] == 2 and "parameter error" in clip["last_error"]
        assert len(emulator.received) == 2


async def test_too_busy_in_an_envelope_costs_no_attempt_as_http_429_does(
    tmp_path: Path, emulator: Emulator
):
    """0429 inside an HTTP 200 means what HTTP 429 means: the service is busy, not the clip
    at fault; it is retried for as long as that lasts and no attempt is counted."""
    emulator.options.update({"refuse_code": "0429"})
    async with running(folder_config(tmp_path, emulator.url)) as edged:
        await edged.add_clip("gate-000.mp4")

        def busy_answers() -> int:
            return sum(r.error == "too busy" for r in emulator.received)

        # As many busy answers as api.max_attempts (3): counted, they would fail the clip.
        await edged.until(lambda: busy_answers() >= 3, "three busy answers", 60)
        emulator.options.update({"refuse_code": None})

        async def done() -> bool:
            return bool(await edged.rows("SELECT 1 FROM clips WHERE state='done'"))

        await edged.until(done, "the clip done once the service is no longer busy", 60)
        clip = (await edged.rows("SELECT attempts FROM clips"))[0]
        assert busy_answers() >= 3 and clip["attempts"] == 1
