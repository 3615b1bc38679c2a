"""Promises under cloud faults: no clip is lost, at-least-once upload (a repeat only where
DESIGN.md allows it), one alert per (clip, person, sink), duplicate, late or forged callbacks
never move a clip backwards, bad input changes nothing.

Each test drives a real `edged run` with a folder camera fed real MP4 files, against the
emulator over HTTP, while the emulator is down (503 then 429 with Retry-After), slow, drops
connections mid-upload, answers HTTP 200 with an error envelope, or sends malformed,
duplicate, late and never-arriving callbacks. Times are scaled down for CI (an outage of
seconds, not minutes); `bench/cloud_outage.py` is the long version with real durations.
The in-process daemon tests of the same faults are in tests/integration/test_daemon_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edged.backoff import retry_delay, tries_bound
from edged.config.model import parse_config
from edged.emulator import Emulator, EmulatorOptions, OptionError, run_emulator
from edged.media.samples import make_clip
from edged.service.wiring import upload_settings
from edged.upload.api import parse_retry_after
from edged.upload.uploader import UploadSettings
from tests.support.edged import callbacks_held, clip_id_of, run_edged
from tests.support.edged_process import EdgedProcess, running
from tests.support.environment import free_port

pytestmark = pytest.mark.timeout(150)

#: Chance, for the whole test, that a correct backoff still makes more requests than allowed.
TAIL = 1e-9
#: Every malformed callback the emulator sends, and what the listener must answer.
MALFORMED_ANSWERS = {
    "malformed:not-json": 400,
    "malformed:truncated": 400,
    "malformed:json-array": 400,
    "malformed:no-envelope": 400,
    "malformed:no-text": 400,
    "malformed:wrong-task": 409,
    "malformed:oversized": 413,
}


# ---- a real `edged run` with a folder camera ---------------------------------------------------


@dataclass
class Box:
    """`edged run` in its own process (`edged`), the NVR folder it watches, what the NVR
    wrote there, and the ledger it writes (read through `edged`)."""

    edged: EdgedProcess
    settings: UploadSettings
    written: list[Path] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.edged.config

    @property
    def folder(self) -> Path:
        return self.edged.folder

    @property
    def metrics(self) -> str:  # host:port of /healthz
        return self.edged.metrics

    async def add_clips(
        self, count: int, prefix: str, *, title: str | None = "Alice", seconds: float = 1.0
    ) -> list[Path]:
        """Recordings written as `.part` (which edged ignores), then renamed, as NVRs do."""
        paths = []
        for _ in range(count):
            paths += await self.rename_parts(
                await self.write_parts(1, prefix, title=title, seconds=seconds)
            )
        return paths

    async def write_parts(
        self, count: int, prefix: str, *, title: str | None = "Alice", seconds: float = 1.0
    ) -> list[Path]:
        """Recordings still being written: `<name>.part`, invisible to edged."""
        parts = []
        for number in range(count):
            name = f"{prefix}-{len(self.written) + number:03d}.mp4"
            part = self.folder / f"{name}.part"
            await asyncio.to_thread(
                make_clip, part, seconds=seconds, width=640, height=480, title=title
            )
            parts.append(part)
        return parts

    async def rename_parts(self, parts: list[Path]) -> list[Path]:
        """The recordings finished: each `.part` renamed into place."""
        paths = []
        for part in parts:
            path = part.with_suffix("")
            await asyncio.to_thread(os.rename, part, path)
            self.written.append(path)
            paths.append(path)
        return paths

    async def rows(self, sql: str, *params: object) -> list[dict[str, Any]]:
        return await self.edged.rows(sql, *params)

    async def clips(self) -> dict[str, dict[str, Any]]:
        """The ledger's clips by file name."""
        rows = await self.rows("SELECT * FROM clips ORDER BY id")
        return {Path(row["path"]).name: row for row in rows}

    async def events(self, clip_id: int) -> list[dict[str, Any]]:
        return await self.rows("SELECT * FROM events WHERE clip_id=? ORDER BY id", clip_id)

    async def until(
        self,
        check: Callable[[], Awaitable[bool]] | Callable[[], bool],
        what: str,
        timeout_s: float = 30.0,
    ) -> None:
        """`eventually`, failing at once (with edged's last log lines) if edged exits."""
        await self.edged.until(check, what, timeout_s)

    def in_states(self, *states: str, count: int | None = None) -> Callable[[], Awaitable[bool]]:
        """Every clip written so far is in the ledger, in one of `states`."""

        async def check() -> bool:
            clips = await self.clips()
            names = [path.name for path in self.written]
            return all(clips.get(name, {}).get("state") in states for name in names)

        return check


def _config_text(tmp_path: Path, api_url: str, folder: Path, metrics: str, **over: object) -> str:
    port = free_port()
    s = {
        "max_attempts": 3,
        "workers": 2,
        "request_timeout": "10m",
        "result_timeout": "2s",
        **over,
    }
    return (
        f"api:\n  base_url: {api_url}\n  api_key: test-key\n  max_attempts: {s['max_attempts']}\n"
        "  shutdown_grace: 5s\n"
        f"  max_concurrent_uploads: {s['workers']}\n  request_timeout: {s['request_timeout']}\n"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        f"  result_timeout: {s['result_timeout']}\n"
        "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
        f"cameras:\n  - name: gate\n    folder: {folder}\n    pattern: '*.mp4'\n"
        f"storage:\n  dir: {tmp_path / 'state'}\n"
        "alerts:\n  cooldown: 0s\n  sinks:\n    - type: log\n"
        f"metrics:\n  listen: {metrics}\n"
    )


@contextlib.asynccontextmanager
async def edged_box(tmp_path: Path, emulator: Emulator, **settings: object) -> AsyncIterator[Box]:
    """Start `edged run`, wait until it serves, yield; then SIGTERM and expect exit 0."""
    folder = tmp_path / "nvr"
    folder.mkdir()
    config = tmp_path / "config.yaml"
    metrics = f"127.0.0.1:{free_port()}"
    text = _config_text(tmp_path, emulator.url, folder, metrics, **settings)
    config.write_text(text)
    async with running(config) as edged:
        yield Box(edged, upload_settings(parse_config(text)))


def uploads_of(emulator: Emulator, clip_id: int) -> list[Any]:
    marker = f"/callbacks/{clip_id}/"
    return [r for r in emulator.received if marker in str(r.req.get("callback", ""))]


def accepted(emulator: Emulator, clip_id: int) -> list[Any]:
    return [r for r in uploads_of(emulator, clip_id) if r.status == 200 and r.task_id]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in events]


async def assert_done_once(box: Box, emulator: Emulator) -> dict[str, dict[str, Any]]:
    """Nothing lost: every recording written is a clip, done, with one result and one alert
    for Alice (the log sink), and the API accepted it once per attempt the ledger knows of."""
    clips = await box.clips()
    assert sorted(clips) == sorted(path.name for path in box.written)
    for name, clip in clips.items():
        assert clip["state"] == "done", (name, clip["state"], clip["last_error"])
        results = await box.rows("SELECT task_id FROM results WHERE clip_id=?", clip["id"])
        assert [r["task_id"] for r in results] == [clip["task_id"]], name
        submitted = kinds(await box.events(clip["id"])).count("submitted")
        assert len(accepted(emulator, clip["id"])) == submitted, f"{name}: an unrecorded upload"
    alerts = await box.rows("SELECT clip_id, person, sink FROM alerts")
    assert Counter((a["clip_id"], a["person"]) for a in alerts) == Counter(
        (clip["id"], "Alice") for clip in clips.values()
    )
    return clips


# ---- the service down: 503, then 429 with Retry-After ------------------------------------------

OUTAGE_S = 9.0  # 503 for 3 s, then 429 for 6 s
RETRY_AFTER_S = 2.0


def outage_over(emulator: Emulator) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return emulator.options.outage_status() is None

    return check


async def test_an_outage_is_ridden_out_within_the_backoff_bound(emulator: Emulator, tmp_path: Path):
    emulator.options.update(
        {
            "retry_after_s": RETRY_AFTER_S,
            "retry_after_statuses": [429],  # the 503s leave the pace to edged's own backoff
            "outage_statuses": [503, 429, 429],
        }
    )
    async with edged_box(tmp_path, emulator) as box:
        # The recordings are written first (as `.part`, which edged ignores) and renamed into
        # place once the outage runs, so edged meets its first phase however slowly they were
        # encoded; each first try is then refused by the 503 phase (3 s of margin), whatever
        # the machine's load.
        parts = await box.write_parts(6, "outage")
        emulator.options.outage_s = OUTAGE_S  # from now
        began = time.time()
        await box.rename_parts(parts)
        per_clip = tries_bound(
            OUTAGE_S,
            base_s=box.settings.backoff_base_s,
            cap_s=box.settings.backoff_cap_s,
            tail=TAIL / len(box.written),
        )
        await box.until(outage_over(emulator), "the end of the outage", timeout_s=OUTAGE_S + 5)
        # From here each clip's next try, already set by its backoff, must go through.
        waiting = await box.rows("SELECT MAX(next_attempt_at) AS t FROM clips")
        due = max(waiting[0]["t"] or 0.0, time.time())
        await box.until(
            box.in_states("done"), "the backlog to drain", timeout_s=due - time.time() + 30
        )
        drained = max(clip["done_at"] for clip in (await box.clips()).values())
        clips = await assert_done_once(box, emulator)

    refused = [r for r in emulator.received if r.status in (503, 429)]
    statuses = Counter(r.status for r in refused)
    assert statuses[503] and statuses[429], f"both phases must be met: {statuses}"
    assert all(r.received_at <= began + OUTAGE_S + 1 for r in refused)
    bound = per_clip * len(clips)
    print(
        f"\noutage {OUTAGE_S:.0f}s, {len(clips)} clips: {len(refused)} requests"
        f" ({dict(statuses)}), {len(refused) / OUTAGE_S * 60:.0f}/min;"
        f" backoff bound {bound} ({bound / OUTAGE_S * 60:.0f}/min);"
        f" drained {drained - began - OUTAGE_S:.1f}s after recovery"
    )
    assert len(refused) <= bound
    for name, clip in clips.items():
        events = await box.events(clip["id"])
        waits = [e for e in events if e["kind"] == "retry_wait"]
        assert len(waits) <= per_clip, name
        # The outage is not the clip's fault: it used one attempt, for the accepted upload.
        assert clip["attempts"] == 1 and len(accepted(emulator, clip["id"])) == 1, name
        # Never sooner than Retry-After: the try after a 429 came at least that much later.
        for index, event in enumerate(events):
            if event["kind"] == "retry_wait" and "HTTP 429" in (event["detail"] or ""):
                after = next(e for e in events[index:] if e["kind"] == "uploading")
                assert after["at"] - event["at"] >= RETRY_AFTER_S - 0.1, (name, events)


# ---- a slow service, and one slower than api.request_timeout ------------------------------------

TIMEOUT_S = 8.0


async def test_a_slow_service_is_waited_for_and_a_timeout_is_retried(
    emulator: Emulator, tmp_path: Path
):
    # A slow answer (2 s) well within api.request_timeout (a 4x margin: the upload itself
    # shares the timeout, and a loaded machine stretches it), then answers twice as slow as
    # the timeout.
    emulator.options.latency_s = 2.0
    async with edged_box(tmp_path, emulator, request_timeout=f"{TIMEOUT_S:g}s") as box:
        slow = await box.add_clips(4, "slow")

        async def listener_answers_mid_upload() -> bool:
            if not any(c["state"] == "uploading" for c in (await box.clips()).values()):
                return False
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.get(f"http://{box.metrics}/healthz") as response,
            ):
                return response.status in (200, 503)  # answered: the loop is not blocked

        await box.until(listener_answers_mid_upload, "/healthz answered mid-upload")
        await box.until(box.in_states("done"), "the slow uploads done", timeout_s=60)
        first = {path.name for path in slow}

        emulator.options.latency_s = 2 * TIMEOUT_S  # now slower than request_timeout
        await box.add_clips(2, "slower")

        async def each_timed_out() -> bool:
            clips = await box.clips()
            later = [c for name, c in clips.items() if name not in first]
            return len(later) == 2 and all(
                "Timeout" in (c["last_error"] or "") or c["state"] == "done" for c in later
            )

        await box.until(each_timed_out, "each slower upload timed out", timeout_s=60)
        emulator.options.latency_s = 0.0
        await box.until(box.in_states("done"), "the timed-out clips done", timeout_s=60)
        clips = await box.clips()
        # The timed-out requests may still have been accepted by the service: their late
        # answers go nowhere, their callbacks find the clip (if not re-sent yet) or a 404.
        for clip in clips.values():
            results = await box.rows("SELECT task_id FROM results WHERE clip_id=?", clip["id"])
            assert len(results) == 1 and clip["state"] == "done"

    for name in first:
        clip = clips[name]
        assert "retry_wait" not in kinds(await box.events(clip["id"])), name
        assert len(uploads_of(emulator, clip["id"])) == 1, name
    spans = sorted((r.started_at, r.received_at) for r in emulator.received[:4])
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlap <= box.settings.workers
    for name, clip in clips.items():
        if name not in first:  # a timeout is the service's fault, not the clip's
            waits = [e for e in await box.events(clip["id"]) if e["kind"] == "retry_wait"]
            assert waits and clip["attempts"] <= 1, name
    duplicates = sum(max(0, len(accepted(emulator, c["id"])) - 1) for c in clips.values())
    print(f"\nslow service: {len(clips)} clips done, {duplicates} accepted twice after a timeout")


# ---- connections cut mid-upload ---------------------------------------------------------------


async def test_connections_cut_mid_upload_are_retried_and_the_file_arrives_whole(
    emulator: Emulator, tmp_path: Path
):
    emulator.options.drop_connection_rate = 1.0  # cut after 64 KiB of a ~300 KB clip
    async with edged_box(tmp_path, emulator) as box:
        paths = await box.add_clips(3, "cut", seconds=20)

        async def each_cut_twice() -> bool:
            clips = await box.clips()
            if len(clips) < len(paths):
                return False
            for clip in clips.values():
                events = await box.events(clip["id"])
                if kinds(events).count("retry_wait") < 2:
                    return False
            return True

        await box.until(each_cut_twice, "two cut uploads of every clip", timeout_s=60)
        emulator.options.drop_connection_rate = 0.0
        await box.until(box.in_states("done"), "every clip done", timeout_s=60)
        clips = await assert_done_once(box, emulator)

    assert sum(1 for r in emulator.received if r.status == 0) >= 2 * len(paths)
    for path in paths:
        clip = clips[path.name]
        [upload] = accepted(emulator, clip["id"])
        data = await asyncio.to_thread(path.read_bytes)
        assert upload.file_size == len(data) == clip["size"]
        assert upload.file_sha256 == hashlib.sha256(data).hexdigest()
        assert clip["attempts"] == 1  # cut connections used up no attempt


# ---- HTTP 200 with an error envelope -----------------------------------------------------------


async def test_an_error_envelope_counts_as_an_attempt_and_a_retry_recovers(
    emulator: Emulator, tmp_path: Path
):
    emulator.options.error_envelope_rate = 1.0
    async with edged_box(tmp_path, emulator, max_attempts=2) as box:
        await box.add_clips(2, "envelope")
        await box.until(box.in_states("failed"), "both clips failed after max_attempts")
        clips = await box.clips()
        for name, clip in clips.items():
            assert "code=5001" in clip["last_error"] and "after 2 attempts" in clip["last_error"]
            answers = uploads_of(emulator, clip["id"])
            assert [(r.status, r.error, r.task_id) for r in answers] == [
                (200, "internal error", None)
            ] * 2, name
        assert emulator.callbacks_sent == []

        emulator.options.error_envelope_rate = 0.0
        code, _, err = await run_edged("retry", "-c", str(box.config), "--failed")
        assert code == 0, err
        await box.until(box.in_states("done"), "the retried clips done")
        await assert_done_once(box, emulator)


# ---- callbacks: malformed, duplicate, late, lost, never ----------------------------------------


async def test_malformed_duplicate_late_and_lost_callbacks(emulator: Emulator, tmp_path: Path):
    # Late: after callback.result_timeout (2 s) has expired the clip, it was sent again and
    # finished with the second upload's result.
    faults = ["malformed", "duplicate:2", "late:5", "drop", "ok"]
    emulator.options.callback_faults = list(faults)

    async def ready(delivery: Any) -> bool:
        """A callback leaves once edged committed its upload's task id; the late one once
        the clip was sent again and is done: conditions, not margins, so a slow machine
        cannot turn "late" into "on time"."""
        scripted = [r.callback_fault for r in emulator.received if r.task_id == delivery.task_id]
        sql, clip_id = "SELECT task_id, state FROM clips WHERE id=?", clip_id_of(delivery)
        rows = await box.rows(sql, clip_id)  # box: the block's, below
        task = rows[0]["task_id"] if rows else None
        if scripted and scripted[0] == "late:5":
            done = bool(rows) and rows[0]["state"] == "done"
            return done and task is not None and task != delivery.task_id
        return bool(scripted) and task == delivery.task_id

    async with edged_box(tmp_path, emulator) as box, callbacks_held(emulator, ready):
        await box.add_clips(len(faults), "cb")

        def settled() -> bool:
            counted = Counter(c.task_id for c in emulator.callbacks_sent if c.status is not None)
            late = [r.task_id for r in emulator.received if r.callback_fault == "late:5"]
            return bool(late) and counted[late[0]] >= 1  # the late one reached edged

        await box.until(box.in_states("done"), "every clip done")
        await box.until(settled, "the late callback and its retries")
        clips = await assert_done_once(box, emulator)

        # Never: a clip whose callback never comes is sent api.max_attempts times, then fails.
        emulator.options.drop_callbacks = True
        await box.add_clips(2, "never")
        never = {path.name for path in box.written[-2:]}

        async def never_failed() -> bool:
            clips = await box.clips()
            return all(clips.get(name, {}).get("state") == "failed" for name in never)

        await box.until(never_failed, "the clips without callbacks failed", timeout_s=45)
        lost = {name: clip for name, clip in (await box.clips()).items() if name in never}
        emulator.options.drop_callbacks = False
        code, _, err = await run_edged("retry", "-c", str(box.config), "--failed")
        assert code == 0, err
        await box.until(box.in_states("done"), "the retried clips done")

    fault_of = {r.task_id: r.callback_fault for r in emulator.received if r.callback_fault}
    assert sorted(fault_of.values()) == sorted(faults)
    by_fault: dict[str, dict[str, Any]] = {}
    for clip in clips.values():
        first = accepted(emulator, clip["id"])[0]
        by_fault[fault_of[first.task_id]] = clip
    sent = emulator.callbacks_sent

    def of(task_id: str) -> list[Any]:
        return [c for c in sent if c.task_id == task_id]

    # Malformed, with the right URL and token: refused, and not one ledger change.
    clip = by_fault["malformed"]
    [task] = [r.task_id for r in accepted(emulator, clip["id"])]
    assert {c.kind: c.status for c in of(task) if c.kind != "result"} == MALFORMED_ANSWERS
    assert kinds(await box.events(clip["id"])) == [
        "queued",
        "uploading",
        "submitted",
        "analyzed",
        "done",
    ]
    # Duplicates: every copy answered 200, one result, one alert.
    clip = by_fault["duplicate:2"]
    [task] = [r.task_id for r in accepted(emulator, clip["id"])]
    assert [c.status for c in of(task)] == [200, 200, 200]
    assert kinds(await box.events(clip["id"])).count("analyzed") == 1
    # Late and lost: expired, sent again, done with the second upload's result; the late
    # result of the first upload, once the clip is done, gets 200 and changes nothing (every
    # attempt's token stays the clip's: a late result while it still waits is accepted).
    for name in ("late:5", "drop"):
        clip = by_fault[name]
        first, second = accepted(emulator, clip["id"])
        assert clip["attempts"] == 2 and clip["task_id"] == second.task_id, name
        assert kinds(await box.events(clip["id"]))[:4] == [
            "queued",
            "uploading",
            "submitted",
            "expired",
        ], name
        if name == "late:5":
            assert [c.status for c in of(first.task_id)] == [200]
            assert kinds(await box.events(clip["id"])).count("analyzed") == 1
        else:
            assert of(first.task_id) == []
    # Never: sent exactly api.max_attempts times, failed with the reason, then retried.
    for name, clip in lost.items():
        assert clip["attempts"] == 3 and "after 3 attempts" in clip["last_error"], name
        assert len(accepted(emulator, clip["id"])) == 3 + 1, name  # + the operator's retry


# ---- the pieces the battery stands on ----------------------------------------------------------


def test_the_backoff_bound_holds_for_simulated_outages():
    rng = random.Random(5)
    for window_s, retry_after_s in ((12.0, None), (12.0, 2.0), (300.0, None)):
        bound = tries_bound(window_s, retry_after_s=retry_after_s, tail=1e-6)
        most = 0
        for _ in range(5000):
            spent, tries = 0.0, 1
            while (spent := spent + retry_delay(tries, retry_after_s, rng=rng)) <= window_s:
                tries += 1
            most = max(most, tries)
        assert most <= bound < most + 6, (window_s, most, bound)
    # A backoff that did not back off would be far over it.
    assert tries_bound(300.0) < 300.0 / 5


def test_a_decimal_retry_after_is_honoured():
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-1") is None and parse_retry_after("nan") is None


async def test_the_emulator_outage_runs_its_phases_then_ends():
    options = EmulatorOptions(
        outage_statuses=(503, 429), retry_after_statuses=(429,), retry_after_s=2.5
    )
    fields = {
        "video_url": "https://cdn.example.com/a.mp4",
        "user_prompt": "u",
        "system_prompt": "s",
    }
    async with run_emulator(options) as emu, aiohttp.ClientSession() as session:
        url = emu.url + "/v1/understand/uploadSync"

        async def post() -> tuple[int, str | None]:
            headers = {"Authorization": "k"}
            async with session.post(url, json=fields, headers=headers) as response:
                return response.status, response.headers.get("Retry-After")

        # Phases long enough that no load turns an answer into the next phase's: each is
        # checked at its own instants through outage_status(now), and over HTTP from within.
        before = time.monotonic()
        emu.options.outage_s = 600.0  # 503 for 300 s, then 429 for 300 s
        after = time.monotonic()
        answers = [await post()]
        at = [before - 1, after + 1, after + 299, before + 301, after + 599, before + 601]
        assert [emu.options.outage_status(now) for now in at] == [
            None,
            503,
            503,
            429,
            429,
            None,
        ]
        emu.options.outage_statuses = (429,)  # the same outage, now in its 429 phase
        answers.append(await post())
        emu.options.outage_s = 0.0  # the outage over
        answers.append(await post())
    assert answers == [(503, None), (429, "2.5"), (200, None)]
    with pytest.raises(OptionError):
        EmulatorOptions(callback_faults=["late:soon"])
    with pytest.raises(OptionError):
        EmulatorOptions().update({"callback_faults": ["drop:3"]})
