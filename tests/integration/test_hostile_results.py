"""Result text is hostile input, through `edged run` and the emulator answering each text:
every corpus case gives its alerts (and nothing else), the verdict's title and threat level
reach the alert, results without a verdict are counted and shown, and a poison text in
flight never keeps /healthz waiting."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import unicodedata
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edged.emulator import Emulator
from edged.ledger.store import Ledger
from tests.support.corpus import AB, Case, generated, load, verdict_block
from tests.support.edged import edged_running, hostile_config, run_edged
from tests.support.ledger import query, queue_clip, reached
from tests.support.waiting import until

# An empty text is no result at all to the callback listener (it answers 400 and the clip
# waits for another): that case is in the corpus test only.
CASES = [case for case in load() + generated() if case.text]
GROUPS: dict[tuple[str, ...], list[Case]] = {}
for _case in CASES:
    GROUPS.setdefault(_case.names, []).append(_case)


async def done_detail(ledger: Ledger, clip: int) -> dict[str, Any]:
    rows = await query(ledger, "SELECT detail FROM events WHERE clip_id=? AND kind='done'", clip)
    assert len(rows) == 1, rows
    detail: dict[str, Any] = json.loads(rows[0]["detail"])
    return detail


async def alerts_of(ledger: Ledger, clip: int) -> list[dict[str, Any]]:
    rows = await query(ledger, "SELECT person, payload FROM alerts WHERE clip_id=?", clip)
    return [{"person": r["person"], **json.loads(r["payload"])} for r in rows]


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


@pytest.mark.slow  # 109 clips through the whole pipeline
@pytest.mark.parametrize("names", list(GROUPS), ids=["+".join(map(nfc, n)) for n in GROUPS])
async def test_every_corpus_case_end_to_end(
    names: tuple[str, ...], emulator: Emulator, clip_factory, ledger: Ledger, tmp_path: Path
) -> None:
    config, _ = hostile_config(tmp_path, emulator.url, names)
    clip_file = await clip_factory("case.mp4")
    cases = GROUPS[names]
    # Each clip gets its case's text by its file name, so all go through at once.
    emulator.options.texts = {f"case-{n}.mp4": case.text for n, case in enumerate(cases)}
    async with edged_running(config) as daemon:
        clips = {}
        for number, case in enumerate(cases):
            copy = clip_file.with_name(f"case-{number}.mp4")
            await asyncio.to_thread(copy.write_bytes, clip_file.read_bytes())
            clips[await queue_clip(ledger, copy)] = case
        wanted = dict.fromkeys(clips, "done")
        await until(reached(ledger, wanted), daemon, what="every case done", timeout_s=90)
    for clip, case in clips.items():
        alerts = await alerts_of(ledger, clip)
        assert sorted(nfc(a["person"]) for a in alerts) == sorted(case.alerts), case.id
        detail = await done_detail(ledger, clip)
        assert detail["verdict"] == case.verdict, (case.id, detail)
        for alert in alerts:
            assert alert["title"] == (case.title or alert["title"]), case.id
            assert case.threat_level is None or alert["threat_level"] == case.threat_level
            assert alert["summary"].isprintable() and (alert["title"] or "").isprintable()
        if case.verdict != "ok":
            mentioned = {nfc(m["person"]) for m in detail["mentions"] if m["present"]}
            assert mentioned == set(case.present), case.id


async def test_title_and_threat_level_reach_the_alert_and_no_verdict_is_never_silent(
    emulator: Emulator,
    clip_factory,
    ledger: Ledger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edged")
    config, metrics_port = hostile_config(tmp_path, emulator.url, AB)
    clip_file = await clip_factory("gate.mp4")
    base = f"http://127.0.0.1:{metrics_port}"

    async def queue(number: int, text: str) -> int:
        emulator.options.text = text
        copy = clip_file.with_name(f"gate-{number}.mp4")
        await asyncio.to_thread(copy.write_bytes, clip_file.read_bytes())
        return await queue_clip(ledger, copy)

    async with edged_running(config) as daemon, aiohttp.ClientSession() as http:
        verdict = verdict_block("Alice", title="Alice forces the gate", threat_level=2)
        first = await queue(0, "Alice climbs over the gate.\n" + verdict)
        await until(reached(ledger, {first: "done"}), daemon, what="the verdict clip done")
        (alert,) = await alerts_of(ledger, first)
        assert (alert["title"], alert["threat_level"]) == ("Alice forces the gate", 2)

        # Five prose-only answers in a row: each counted, the fifth says so in a warning.
        prose = [await queue(n, f"Alice walks up to the gate at 00:0{n}.") for n in range(1, 6)]
        await until(reached(ledger, dict.fromkeys(prose, "done")), daemon, what="prose clips done")
        assert [await alerts_of(ledger, clip) for clip in prose] == [[]] * 5
        warned = [r for r in caplog.records if "not following the verdict format" in r.message]
        assert len(warned) == 1 and warned[0].levelno == logging.WARNING

        async def metric() -> bool:
            async with http.get(f"{base}/metrics") as response:
                body = await response.text()
            return "edged_results_without_verdict_total 5.0" in body

        await until(metric, daemon, what="the counter at 5", timeout_s=20)
        async with http.get(f"{base}/healthz") as response:
            health = await response.json()
        assert health["verdicts"] == {"results_without_verdict": 5, "without_verdict_in_a_row": 5}

        code, out, err = await run_edged("status", "-c", str(config))
        assert code == 0, err
        assert "results without a valid verdict: 5" in out, out
        assert f"clip {prose[-1]} (" in out and "mentions Alice: Alice walks up" in out, out

        # A verdict again ends the run.
        again = await queue(9, verdict)
        await until(reached(ledger, {again: "done"}), daemon, what="the last clip done")
        async with http.get(f"{base}/healthz") as response:
            assert (await response.json())["verdicts"]["without_verdict_in_a_row"] == 0


POISONS = {
    # The old fence pattern took minutes on this at the cap, on the ledger's thread.
    "unclosed-fence-then-long-line": "Alice waves.\n```json " + "a" * 199_000,
    "brace-tower": "{" * 199_000,
    "many-fences": "```\n" * 49_000,
    "many-mentions": "no sign of Alice " * 11_000,
}


async def test_healthz_answers_within_a_second_while_poison_texts_are_read(
    emulator: Emulator, clip_factory, ledger: Ledger, tmp_path: Path
) -> None:
    config, metrics_port = hostile_config(tmp_path, emulator.url, AB)
    clip_file = await clip_factory("poison.mp4")
    url = f"http://127.0.0.1:{metrics_port}/healthz"
    slowest = 0.0
    timeout = aiohttp.ClientTimeout(total=5)
    async with edged_running(config) as daemon, aiohttp.ClientSession(timeout=timeout) as http:
        for number, (name, text) in enumerate(POISONS.items()):
            emulator.options.text = text
            copy = clip_file.with_name(f"poison-{number}.mp4")
            await asyncio.to_thread(copy.write_bytes, clip_file.read_bytes())
            clip = await queue_clip(ledger, copy)
            deadline = time.monotonic() + 30
            polls = 0
            while True:
                started = time.monotonic()
                async with http.get(url) as response:
                    assert response.status == 200, await response.text()
                took = time.monotonic() - started
                slowest = max(slowest, took)
                assert took < 1.0, f"/healthz took {took:.2f}s with {name} in flight"
                polls += 1
                states = await query(ledger, "SELECT state FROM clips WHERE id=?", clip)
                if states[0]["state"] == "done":
                    break
                assert not daemon.done() and time.monotonic() < deadline, name
            detail = await query(
                ledger, "SELECT detail FROM events WHERE clip_id=? AND kind='done'", clip
            )
            assert json.loads(detail[0]["detail"])["verdict"] == "missing", name
            assert polls >= 1
    assert slowest < 1.0
