"""Running unattended: systemd notify and watchdog, /healthz, /metrics, reload, guardrails,
redaction, on a real `edged run` against the emulator."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest

from edged.emulator import Emulator
from edged.media.samples import make_clip
from tests.support.edged import run_edged
from tests.support.edged_process import EdgedProcess, running
from tests.support.environment import free_port
from tests.support.waiting import eventually

SECRET = "whsec-do-not-log-me"


def config_text(
    tmp_path: Path,
    api_url: str,
    metrics_port: int,
    cameras: str,
    *,
    api_key: str = "sk-test-key-never-logged",
    extra: str = "",
) -> str:
    port = free_port()
    return (
        f"api:\n  base_url: {api_url}\n  api_key: {api_key}\n"
        f"callback:\n  listen: 127.0.0.1:{port}\n  public_url: http://127.0.0.1:{port}\n"
        "persons:\n  - name: Alice\n    url: https://example.com/alice.jpg\n"
        f"storage:\n  dir: {tmp_path / 'state'}\n"
        f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n"
        f"alerts:\n  cooldown: 0s\n  sinks:\n    - type: log\n"
        f"    - type: webhook\n      url: http://127.0.0.1:9/unreachable\n      secret: {SECRET}\n"
        f"cameras:\n{cameras}{extra}"
    )


def folder_camera(name: str, folder: Path, extra: str = "") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return f"  - name: {name}\n    folder: {folder}\n    settle: 0.5s\n    since: 1h\n{extra}"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.setblocking(False)
        yield sock


def drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def edged_run(
    config: Path, env: dict[str, str] | None = None
) -> AbstractAsyncContextManager[EdgedProcess]:
    """`edged run` at DEBUG for the block, not waited on to serve."""
    return running(config, serving=False, options=("--log-level", "DEBUG"), env=env)


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def metric(port: int, name: str, **labels: str) -> float | None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(r"^(\w+)(\{.*\})? ([-+\d.e]+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


async def test_notify_ready_watchdog_and_stopping(
    emulator: Emulator, tmp_path: Path, notify_socket: socket.socket
):
    config = tmp_path / "config.yaml"
    config.write_text(
        config_text(tmp_path, emulator.url, free_port(), folder_camera("yard", tmp_path / "nvr"))
    )
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    seen: list[str] = []

    def got(state: str) -> bool:
        seen.extend(drain(notify_socket))
        return any(m.startswith(state) for m in seen)

    async with edged_run(config, env) as process:
        await eventually(lambda: got("READY=1"), what="READY=1")

        def pings() -> int:
            seen.extend(drain(notify_socket))
            return seen.count("WATCHDOG=1")

        await eventually(lambda: pings() >= 2, what="watchdog pings")
        # Hold the ledger locked: the health probe cannot write, so the pings must stop.
        blocker = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3", timeout=5)
        blocker.execute("BEGIN EXCLUSIVE")
        # A probe that wrote just before the lock may still ping: let one interval pass first.
        settled = time.monotonic() + 0.6
        await eventually(lambda: time.monotonic() > settled, what="one watchdog interval")
        drain(notify_socket)
        end = time.monotonic() + 2.5  # five ping intervals
        await eventually(lambda: time.monotonic() > end, what="a few watchdog intervals")
        during_lock = drain(notify_socket)
        blocker.rollback()
        blocker.close()
        seen.clear()
        await eventually(lambda: got("WATCHDOG=1"), what="pings to resume")
        assert await process.stop(signal.SIGTERM, timeout_s=30) == 0
    assert "WATCHDOG=1" not in during_lock
    assert got("STOPPING=1")


async def test_healthz_metrics_trace_and_redaction(emulator: Emulator, tmp_path: Path):
    metrics_port = free_port()
    config = tmp_path / "config.yaml"
    nvr = tmp_path / "nvr"
    config.write_text(config_text(tmp_path, emulator.url, metrics_port, folder_camera("yard", nvr)))
    async with edged_run(config) as process:
        base = f"http://127.0.0.1:{metrics_port}"

        async def serving() -> bool:
            try:
                return (await get_json(f"{base}/healthz"))[0] == 200
            except aiohttp.ClientError:
                return False

        await eventually(serving, what="/healthz to answer 200")
        _, body = await get_json(f"{base}/healthz")
        assert body["ledger_writable"] and body["api"]["auth_ok"]
        assert set(body["stages"]) >= {"sources", "uploader", "analyzer", "alerts", "expirer"}
        assert all(state == "running" for state in body["stages"].values())
        assert body["cameras"]["yard"]["last_clip_age_s"] is None
        before = await metric(metrics_port, "edged_clips", camera="yard", state="done") or 0
        await asyncio.to_thread(make_clip, nvr / "alice.mp4", seconds=1, title="Alice")

        async def one_done() -> bool:
            return await metric(metrics_port, "edged_clips", camera="yard", state="done") == 1

        await eventually(one_done, what="the clip to be done in /metrics")
        assert before == 0
        await eventually(
            lambda: metric(metrics_port, "edged_clip_step_seconds_count", step="upload"),
            what="the upload step in the latency histogram",
        )
        assert (await metric(metrics_port, "edged_upload_bytes_total")) > 0
        assert await metric(metrics_port, "edged_alerts", sink="log", outcome="sent") == 1
        code, trace, _ = await run_edged("status", "-c", str(config), "--clip", "1")
        assert code == 0
        for step in ("found (queued)", "upload done", "result received", "alert Alice → log"):
            assert step in trace
        _, status, _ = await run_edged("status", "-c", str(config))
        async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
            exported = await response.text()
        await process.stop(signal.SIGTERM, timeout_s=30)
    log = process.log()
    assert "uploading camera=yard" in log, "the DEBUG log was captured"
    token = (await process.rows("SELECT callback_token FROM clips WHERE id=1"))[0]["callback_token"]
    assert token and len(token) >= 22  # 128 random bits
    for shown in (log, trace, status, exported):
        for secret in ("sk-test-key-never-logged", SECRET, token):
            assert secret not in shown


async def test_healthz_is_503_while_the_api_refuses_the_key(emulator: Emulator, tmp_path: Path):
    emulator.options.api_key = "the-right-key"
    metrics_port = free_port()
    nvr = tmp_path / "nvr"
    config = tmp_path / "config.yaml"
    config.write_text(config_text(tmp_path, emulator.url, metrics_port, folder_camera("yard", nvr)))
    await asyncio.to_thread(make_clip, nvr / "a.mp4", seconds=1)
    async with edged_run(config):

        async def unhealthy() -> bool:
            try:
                status, body = await get_json(f"http://127.0.0.1:{metrics_port}/healthz")
            except aiohttp.ClientError:
                return False
            return status == 503 and body["api"]["auth_ok"] is False

        await eventually(unhealthy, what="/healthz to report the refused key")


async def test_reload_adds_and_removes_cameras_and_rejects_a_bad_config(
    emulator: Emulator, tmp_path: Path
):
    config = tmp_path / "config.yaml"
    metrics_port = free_port()
    yard, gate = tmp_path / "yard", tmp_path / "gate"
    config.write_text(
        config_text(tmp_path, emulator.url, metrics_port, folder_camera("yard", yard))
    )

    async with edged_run(config) as process:

        async def done_of(camera: str) -> int:
            clips = await process.clips()
            return sum(c["camera"] == camera and c["state"] == "done" for c in clips)

        async def done_in(camera: str, count: int) -> bool:
            return await done_of(camera) == count

        await asyncio.to_thread(make_clip, yard / "one.mp4", seconds=1)
        await eventually(lambda: done_in("yard", 1), what="yard's first clip")
        # A bad config is refused; the running one goes on.
        config.write_text(
            config_text(
                tmp_path,
                emulator.url,
                metrics_port,
                folder_camera("yard", yard, "    settle: -5s\n"),
            )
        )
        process.send_signal(signal.SIGHUP)
        await asyncio.to_thread(make_clip, yard / "two.mp4", seconds=1)
        await eventually(lambda: done_in("yard", 2), what="yard after a bad reload")
        # Swap yard for gate.
        config.write_text(
            config_text(tmp_path, emulator.url, metrics_port, folder_camera("gate", gate))
        )
        process.send_signal(signal.SIGHUP)
        await asyncio.to_thread(make_clip, gate / "g.mp4", seconds=1)
        await eventually(lambda: done_in("gate", 1), what="the added camera")
        await asyncio.to_thread(make_clip, yard / "three.mp4", seconds=1)
        await asyncio.to_thread(make_clip, gate / "g2.mp4", seconds=1)
        await eventually(lambda: done_in("gate", 2), what="gate's second clip")
        await process.stop(signal.SIGTERM, timeout_s=30)
    assert await done_of("yard") == 2, "a removed camera's files are not queued"
    log = process.log()
    assert "reload rejected" in log and "settle" in log
    assert "camera added camera=gate" in log and "camera removed camera=yard" in log


async def test_budget_skips_then_retry_sends(emulator: Emulator, tmp_path: Path):
    config = tmp_path / "config.yaml"
    nvr = tmp_path / "nvr"
    config.write_text(
        config_text(
            tmp_path,
            emulator.url,
            free_port(),
            folder_camera("yard", nvr, "    budget: {clips: 1}\n    schedule: ['00:00-24:00']\n"),
        )
    )

    async with edged_run(config) as process:

        def states_are(*wanted: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                rows = await process.clips()
                return [row["state"] for row in rows] == list(wanted)

            return check

        await asyncio.to_thread(make_clip, nvr / "a.mp4", seconds=1)
        await eventually(states_are("done"), what="the first clip")
        await asyncio.to_thread(make_clip, nvr / "b.mp4", seconds=1, title="b")
        await eventually(states_are("done", "skipped_budget"), what="a skipped clip")
        code, status, _ = await run_edged("status", "-c", str(config))
        assert "skipped_budget 1" in status and "over the budget of camera yard" in status
        code, out, _ = await run_edged("retry", "-c", str(config), "--skipped")
        assert code == 0 and "requeued 1 clips" in out
        await eventually(states_are("done", "done"), what="the retried clip")
    assert len(emulator.received) == 2
