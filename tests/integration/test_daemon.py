"""`edged run` as a whole: clips in the ledger → emulator over HTTP → callbacks → matcher →
alert outbox → a real webhook receiver, plus `edged status` and `edged retry` beside it.

The fault tests (lost and late callbacks, API and webhook outages, SIGTERM, kill -9) are in
test_daemon_faults.py and share the helpers defined here.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from edged.alerts.model import alert_id_for
from edged.alerts.webhook import sign
from edged.clip import NewClip
from edged.config.model import parse_config
from edged.emulator import Emulator
from edged.ledger.clips import Ledger
from edged.media.samples import make_clip
from edged.service.daemon import run_daemon
from tests.conftest import eventually, free_port, run_edged

SECRET = "s3cret"
CAMERA = "porch"
INSTANCE = "test-box"


# ---- a webhook receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One POST the receiver got, and the status it answered."""

    headers: CIMultiDict[str]
    body: bytes
    status: int

    @property
    def alert(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def signature_ok(self) -> bool:
        expected = sign(
            SECRET, self.headers["webhook-id"], int(self.headers["webhook-timestamp"]), self.body
        )
        return expected == self.headers.get("X-Edged-Signature")


class Receiver:
    """A webhook endpoint on 127.0.0.1:0 that records every request. It answers 503 while
    `fail_next` is above zero (counting down), and to alerts of the clips in `failing_clips`."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.fail_next = 0
        self.failing_clips: set[int] = set()
        self.url = ""

    @property
    def delivered(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.status == 200]

    def delivered_ids(self) -> Counter[str]:
        return Counter(hit.alert["alert_id"] for hit in self.delivered)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 200
        if self.fail_next > 0:
            self.fail_next -= 1
            status = 503
        elif json.loads(body)["clip"]["id"] in self.failing_clips:
            status = 503
        self.hits.append(Hit(request.headers.copy(), body, status))
        return web.json_response({"ok": status == 200}, status=status)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Receiver]:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
            yield self
        finally:
            await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver().serve() as hook:
        yield hook


# ---- config, ledger and daemon helpers ------------------------------------------------------


def daemon_config(
    tmp_path: Path,
    api_url: str,
    hook_url: str,
    *,
    max_attempts: int = 3,
    result_timeout: str = "2s",
    cooldown: str = "0s",
) -> Path:
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api:\n  base_url: {api_url}\n  api_key: test-key\n  max_attempts: {max_attempts}\n"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        f"  result_timeout: {result_timeout}\n"
        "persons:\n"
        "  - name: Alice\n    url: https://example.com/alice.jpg\n"
        "  - name: Bob\n    url: https://example.com/bob.jpg\n"
        f"storage:\n  dir: {tmp_path / 'state'}\n"
        f"alerts:\n  cooldown: {cooldown}\n  sinks:\n"
        f"    - type: webhook\n      url: {hook_url}\n      secret: {SECRET}\n"
        "    - type: log\n"
        f"instance: {INSTANCE}\n"
        f"metrics:\n  listen: 127.0.0.1:{free_port()}\n"
    )
    return path


async def queue_clip(ledger: Ledger, path: Path) -> int:
    """Put a finished clip in the ledger, as a source would (another connection: the daemon
    finds it on its next poll)."""
    size = (await asyncio.to_thread(path.stat)).st_size
    new = NewClip(CAMERA, path, size, start=None, duration_s=1.0, source_key=f"test:{path.name}")
    clip, created = await asyncio.to_thread(ledger.add_clip, new)
    assert created
    return clip.id


async def query(ledger: Ledger, sql: str, *params: object) -> list[dict[str, Any]]:
    rows = await asyncio.to_thread(ledger.execute, sql, params)
    return [dict(row) for row in rows]


async def clip_states(ledger: Ledger) -> dict[int, str]:
    return {row["id"]: row["state"] for row in await query(ledger, "SELECT id, state FROM clips")}


async def outbox(ledger: Ledger) -> list[dict[str, Any]]:
    return await query(
        ledger,
        "SELECT alert_id, sink, clip_id, person, state, attempts FROM alerts"
        " ORDER BY clip_id, person, sink",
    )


def reached(ledger: Ledger, wanted: dict[int, str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        states = await clip_states(ledger)
        return all(states.get(clip_id) == state for clip_id, state in wanted.items())

    return check


def all_sent(ledger: Ledger, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await outbox(ledger)
        return len(rows) == count and all(row["state"] == "sent" for row in rows)

    return check


def uploads_of(emulator: Emulator, clip_id: int) -> list[Any]:
    """The uploadFile requests whose callback URL names this clip."""
    marker = f"/callbacks/{clip_id}/"
    return [r for r in emulator.received if marker in str(r.req.get("callback", ""))]


async def expected_ids(ledger: Ledger, pairs: list[tuple[int, str]]) -> set[str]:
    install_id = await asyncio.to_thread(ledger.get_meta, "install_id")
    assert install_id is not None
    return {alert_id_for(install_id, clip_id, person) for clip_id, person in pairs}


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    opened = await asyncio.to_thread(Ledger, tmp_path / "state")
    yield opened
    await asyncio.to_thread(opened.close)


@asynccontextmanager
async def edged_running(config_path: Path) -> AsyncIterator[asyncio.Task[int]]:
    """`edged run` in this process: serving once the block starts, stopped (exit 0) after it."""
    config = parse_config(await asyncio.to_thread(config_path.read_text))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_daemon(config, shutdown=stop, on_ready=lambda _port: ready.set()), name="edged"
    )
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({task, started}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        pytest.fail(f"edged stopped while starting: {task.result()!r}")
    assert ready.is_set(), "edged did not start serving"
    try:
        yield task
    finally:
        stop.set()
        code = await asyncio.wait_for(task, 30)
    assert code == 0


async def until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    daemon: asyncio.Future[Any] | None,
    *,
    what: str,
    timeout_s: float = 20.0,
) -> None:
    """`eventually`, failing at once if the daemon stops meanwhile."""

    async def probe() -> bool:
        if daemon is not None and daemon.done():
            pytest.fail(f"edged stopped while waiting for {what}: {daemon.result()!r}")
        result = check()
        return bool(await result if inspect.isawaitable(result) else result)

    await eventually(probe, timeout_s=timeout_s, what=what)


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
        stored = await asyncio.to_thread(ledger.result, quiet)
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
