"""Alert sinks and snapshots through `edged run`: the command sink (fields, no shell, stdin,
a clean environment, retries), the webhook's snapshot inline and as a signed link on the
callback listener, a clip that cannot be decoded, unknown people and `alert: never`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import standardwebhooks

from edged.alerts.analyzer import build_alerts
from edged.alerts.base import DeliveryError
from edged.alerts.command import CommandSink
from edged.alerts.delivery import AlertDelivery
from edged.alerts.policy import AlertPolicy
from edged.clip import NewClip
from edged.emulator import Emulator
from edged.ledger.outbox import Alert
from edged.ledger.store import Ledger
from edged.ledger.thread import AsyncLedger
from edged.results.matcher import Match
from tests.support.edged import INSTANCE, edged_running
from tests.support.environment import free_port
from tests.support.ledger import CAMERA, all_sent, expected_ids, outbox, queue_clip, reached
from tests.support.waiting import eventually, until
from tests.support.webhook import SECRET, Receiver

NOTIFY = """\
import json, os, pathlib, sys
out, fields = pathlib.Path(sys.argv[1]), sys.argv[2:]
alert_id = fields[5]
tries = out / f"{alert_id}.tries"
count = int(tries.read_text()) + 1 if tries.exists() else 1
tries.write_text(str(count))
mode = sys.argv[0].rsplit("-", 1)[-1]
if mode == "flaky.py" and count == 1:
    sys.exit("boom: the first try fails")
if mode == "flaky.py" and count == 2:
    import time; time.sleep(30)
record = {"fields": fields, "stdin": sys.stdin.read(), "env": sorted(os.environ)}
(out / f"{alert_id}.json").write_text(json.dumps(record))
"""
FIELDS = ["{person}", "{camera}", "{confidence}", "{clip}", "{snapshot}", "{alert_id}", "{time}"]


def notify_script(tmp_path: Path, kind: str = "ok") -> tuple[Path, Path]:
    script, out = tmp_path / f"notify-{kind}.py", tmp_path / "notified"
    script.write_text(NOTIFY)
    out.mkdir(exist_ok=True)
    return script, out


def config_with(tmp_path: Path, api_url: str, *, sinks: str, extra: str = "") -> Path:
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api: {{base_url: {api_url}, api_key: test-key}}\n"
        f"callback: {{listen: 127.0.0.1:{port}, public_url: http://127.0.0.1:{port}}}\n"
        "persons:\n"
        "  - {name: Alice, url: https://example.com/alice.jpg}\n"
        "  - {name: Bob, url: https://example.com/bob.jpg, alert: never}\n"
        '  - {name: "Mary O\'Neil; rm -rf", url: https://example.com/mary.jpg}\n'
        f"storage: {{dir: {tmp_path / 'state'}}}\n"
        f"alerts:\n  cooldown: 0s\n{extra}  sinks:\n{sinks}"
        f"instance: {INSTANCE}\n"
        # Not the default 127.0.0.1:9464: two tests at once (or anything else on the box)
        # would meet there.
        f"metrics: {{listen: 127.0.0.1:{free_port()}}}\n"
    )
    return path


async def test_the_command_gets_the_alert_fields_as_arguments_and_the_alert_on_stdin(
    emulator: Emulator, clip_factory, ledger: Ledger, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("EDGED_API_KEY", "must-not-reach-the-command")
    script, out = notify_script(tmp_path)
    argv = json.dumps([sys.executable, str(script), str(out), *FIELDS])
    config = config_with(tmp_path, emulator.url, sinks=f"    - {{type: command, argv: {argv}}}\n")
    title = "Mary O'Neil; rm -rf at the door"
    clip = await queue_clip(ledger, await clip_factory("m.mp4", title=title))
    async with edged_running(config) as daemon:
        await until(all_sent(ledger, 1), daemon, what="the command run")
    (alert_id,) = await expected_ids(ledger, [(clip, "Mary O'Neil; rm -rf")])
    record = json.loads((out / f"{alert_id}.json").read_text())
    person, camera, confidence, clip_path, snapshot, given_id, seen_at = record["fields"]
    assert (person, camera, confidence, given_id) == (
        "Mary O'Neil; rm -rf",
        CAMERA,
        "0.92",
        alert_id,
    )
    assert clip_path == str(tmp_path / "clips" / "m.mp4")
    assert snapshot == str(tmp_path / "state" / "snapshots" / CAMERA / f"{alert_id}.jpg")
    picture = await asyncio.to_thread(Path(snapshot).read_bytes)
    assert picture.startswith(b"\xff\xd8\xff")
    assert seen_at.endswith("Z")
    stdin = json.loads(record["stdin"])
    assert (stdin["alert_id"], stdin["instance"]) == (alert_id, INSTANCE)
    assert "EDGED_API_KEY" not in record["env"]


async def test_a_failing_or_hanging_command_is_retried_until_it_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    script, out = notify_script(tmp_path, "flaky")
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    db = AsyncLedger(ledger)
    policy = AlertPolicy(("Alice",), 0.5, ("command",), "box")

    def enqueue() -> str:
        clip, _ = ledger.clips.add(NewClip("gate", tmp_path / "a.mp4", 10, duration_s=2.0))
        now = time.time()
        match = Match("Alice", True, 0.9, (), "json", "")
        alerts = build_alerts(clip, "Alice.", [match], policy, "i", now)
        ledger.outbox.add(alerts, now)
        return alerts[0].alert_id

    alert_id = await asyncio.to_thread(enqueue)
    sink = CommandSink("command", [sys.executable, str(script), str(out), *FIELDS], 0.5)
    delivery = AlertDelivery(
        db, [sink], cooldown_s=0, retry_max_age_s=600, backoff_base_s=0.01, backoff_cap_s=0.05
    )
    running = asyncio.create_task(delivery.run())
    try:
        with caplog.at_level(logging.WARNING):

            async def sent() -> bool:
                rows = await db.call(ledger.db.rows, "SELECT state, attempts FROM alerts")
                return rows[0]["state"] == "sent"

            await eventually(sent, what="the third try to succeed")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    (row,) = await db.call(ledger.db.rows, "SELECT attempts, last_error FROM alerts")
    assert (row["attempts"], row["last_error"]) == (3, None)
    assert (out / f"{alert_id}.tries").read_text() == "3"
    assert "exited 1: boom: the first try fails" in caplog.text
    assert "did not finish in 0.5s" in caplog.text
    await db.aclose()


async def test_webhook_snapshots_inline_and_as_signed_links(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    sinks = (
        f"    - {{type: webhook, url: {receiver.url}, secret: {SECRET}}}\n"
        f"    - {{type: webhook, url: {receiver.url}, secret: {SECRET}, snapshot: url}}\n"
        f"    - {{type: webhook, url: {receiver.url}, snapshot: none}}\n"
    )
    config = config_with(tmp_path, emulator.url, sinks=sinks)
    clips_before = sorted((tmp_path / "clips").glob("*")) if (tmp_path / "clips").exists() else []
    clip = await queue_clip(ledger, await clip_factory("alice.mp4", title="Alice", seconds=2.0))
    async with edged_running(config) as daemon:
        await until(all_sent(ledger, 3), daemon, what="the alert on three webhooks")
        by_form = {_form(hit.alert["snapshot"]): hit.alert for hit in receiver.delivered}
        inline, link, bare = by_form["data"], by_form["url"], by_form[None]
        picture = base64.b64decode(inline["snapshot"]["data"])
        async with aiohttp.ClientSession() as http:
            async with http.get(link["snapshot"]["url"]) as response:
                assert response.status == 200 and response.content_type == "image/jpeg"
                assert await response.read() == picture
            forged = link["snapshot"]["url"].replace("sig=", "sig=0")
            async with http.get(forged) as response:
                assert response.status == 404
    assert all(hit.signature_ok for hit in receiver.delivered if "webhook-signature" in hit.headers)
    assert picture.startswith(b"\xff\xd8\xff")
    (alert_id,) = await expected_ids(ledger, [(clip, "Alice")])
    expected = {"content_type": "image/jpeg", "width": 320, "height": 240, "at_s": 1.0}
    assert {k: inline["snapshot"][k] for k in expected} == expected
    assert link["snapshot"]["url"].startswith(
        f"{config_public_url(config)}/snapshots/{CAMERA}/{alert_id}.jpg?expires="
    )
    assert bare["snapshot"] is None and bare["alert_id"] == alert_id
    # Stored in edged's own storage, never beside the recording.
    assert (tmp_path / "state" / "snapshots" / CAMERA / f"{alert_id}.jpg").read_bytes() == picture
    assert sorted((tmp_path / "clips").glob("*")) == [*clips_before, tmp_path / "clips/alice.mp4"]


def _form(snapshot: dict[str, Any] | None) -> str | None:
    return None if snapshot is None else "data" if "data" in snapshot else "url"


def config_public_url(path: Path) -> str:
    text = path.read_text()
    return text.split("public_url: ", 1)[1].split("}", 1)[0]


async def test_a_clip_that_cannot_be_decoded_still_alerts_without_a_picture(
    emulator: Emulator,
    clip_factory,
    receiver: Receiver,
    ledger: Ledger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    emulator.options.callback_delay_s = 1.0  # time to remove the recording once uploaded
    config = config_with(
        tmp_path, emulator.url, sinks=f"    - {{type: webhook, url: {receiver.url}}}\n"
    )
    path = await clip_factory("gone.mp4", title="Alice")
    clip = await queue_clip(ledger, path)
    with caplog.at_level(logging.WARNING):
        async with edged_running(config) as daemon:
            await until(reached(ledger, {clip: "submitted"}), daemon, what="the upload")
            await asyncio.to_thread(path.unlink)  # say, the NVR's retention removed it
            await until(all_sent(ledger, 1), daemon, what="the alert sent")
    (hit,) = receiver.delivered
    assert hit.alert["person"] == "Alice" and hit.alert["snapshot"] is None
    assert f"no snapshot camera={CAMERA} clip={clip}" in caplog.text


async def test_unknown_people_and_alert_never_end_to_end(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    block: dict[str, Any] = {
        "persons": [
            {"name": "Alice", "present": False, "confidence": 0.0, "timestamps": []},
            {"name": "Bob", "present": True, "confidence": 0.95, "timestamps": [0.5]},
        ],
        "unknown_people": 1,
        "unknown_timestamps": [0.7],
    }
    emulator.options.text = f"Bob and a stranger at the gate.\n```json\n{json.dumps(block)}\n```"
    config = config_with(
        tmp_path,
        emulator.url,
        sinks=f"    - {{type: webhook, url: {receiver.url}}}\n",
        extra="  unknown: true\n",
    )
    clip = await queue_clip(ledger, await clip_factory("gate.mp4"))
    async with edged_running(config) as daemon:
        await until(reached(ledger, {clip: "done"}), daemon, what="the clip done")
        await until(all_sent(ledger, 1), daemon, what="the unknown alert sent")
    assert [(r["person"], r["sink"]) for r in await outbox(ledger)] == [("unknown", "webhook")]
    (hit,) = receiver.delivered
    assert (hit.alert["person"], hit.alert["moment_s"]) == ("unknown", 0.7)
    assert hit.alert["snapshot"]["at_s"] == pytest.approx(0.7)
    (upload,) = emulator.received
    assert '"unknown_people": 0' in upload.req["user_prompt"]


#: A secret in the Standard Webhooks form: `whsec_` and the base64 of the key's bytes.
WHSEC = "whsec_" + base64.b64encode(b"edged-test-key-0123456789abcdef!").decode()


async def test_webhook_signatures_verify_with_the_standard_webhooks_library(
    emulator: Emulator, clip_factory, receiver: Receiver, ledger: Ledger, tmp_path: Path
):
    """The official `standardwebhooks` package accepts every delivery: a `whsec_` secret is
    the base64 of the key, any other secret is its UTF-8 bytes; the timestamp is now."""
    async with Receiver().serve() as raw:
        sinks = (
            f"    - {{type: webhook, url: {receiver.url}, secret: {WHSEC}}}\n"
            f"    - {{type: webhook, url: {raw.url}, secret: {SECRET}}}\n"
        )
        config = config_with(tmp_path, emulator.url, sinks=sinks)
        await queue_clip(ledger, await clip_factory("alice.mp4", title="Alice"))
        async with edged_running(config) as daemon:
            await until(all_sent(ledger, 2), daemon, what="the alert on both webhooks")
    for hits, key in ((receiver.delivered, WHSEC), (raw.delivered, SECRET.encode())):
        assert len(hits) == 1
        headers = {name.lower(): value for name, value in hits[0].headers.items()}
        payload = standardwebhooks.Webhook(key).verify(hits[0].body, headers)  # raises if not
        assert payload["alert_id"] == headers["webhook-id"]
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60, "signed now"
    # The whole `whsec_...` string as the key (what a receiver must not need) does not verify.
    headers = {name.lower(): value for name, value in receiver.delivered[0].headers.items()}
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(WHSEC.encode()).verify(receiver.delivered[0].body, headers)


# ---- the command sink against real programs -------------------------------------------------

#: Exits 0 at once, leaving a child in the background that holds its stderr.
BACKGROUND = """\
import pathlib, subprocess, sys
out = pathlib.Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
(out / "child.pid").write_text(str(child.pid))
with open(out / "runs", "a") as runs:
    runs.write("run\\n")
"""
#: Never exits, and has a child of its own.
HANGING = """\
import os, pathlib, subprocess, sys, time
out = pathlib.Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
(out / "pids").write_text(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""
#: Writes the arguments it got.
ARGS = """\
import json, pathlib, sys
pathlib.Path(sys.argv[1], "argv.json").write_text(json.dumps(sys.argv[2:]))
"""


def _alert(person: str = "Alice", summary: str = "Alice at the gate.") -> Alert:
    payload = {"alert_id": "al_1", "summary": summary, "seen_at": "2024-01-01T00:00:00Z"}
    return Alert(
        "al_1", "command", 1, "gate", person, 0.9, 0.0, json.dumps(payload), 0, time.time()
    )


def _gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def test_a_command_that_exits_0_is_one_delivery_even_if_its_child_holds_stderr(
    tmp_path: Path,
):
    script, out = tmp_path / "background.py", tmp_path / "out"
    script.write_text(BACKGROUND)
    out.mkdir()
    ledger = await asyncio.to_thread(Ledger, tmp_path / "state")
    db = AsyncLedger(ledger)
    policy = AlertPolicy(("Alice",), 0.5, ("command",), "box")

    def enqueue() -> None:
        clip, _ = ledger.clips.add(NewClip("gate", tmp_path / "a.mp4", 10, duration_s=2.0))
        now = time.time()
        alerts = build_alerts(
            clip, "Alice.", [Match("Alice", True, 0.9, (), "json", "")], policy, "i", now
        )
        ledger.outbox.add(alerts, now)

    await asyncio.to_thread(enqueue)
    sink = CommandSink("command", [sys.executable, str(script), str(out)], 5.0)
    delivery = AlertDelivery(
        db, [sink], cooldown_s=0, retry_max_age_s=600, backoff_base_s=0.01, backoff_cap_s=0.05
    )
    running = asyncio.create_task(delivery.run())
    try:

        async def sent() -> bool:
            rows = await db.call(ledger.db.rows, "SELECT state FROM alerts")
            return rows[0]["state"] == "sent"

        await eventually(sent, what="the delivery", timeout_s=20)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if (out / "child.pid").exists():
            _kill(int((out / "child.pid").read_text()))
    (row,) = await db.call(ledger.db.rows, "SELECT attempts, last_error FROM alerts")
    assert (row["attempts"], row["last_error"]) == (1, None)
    assert (out / "runs").read_text() == "run\n", "run once, not again at a timeout"
    await db.aclose()


async def test_a_command_past_its_timeout_is_killed_with_its_whole_process_group(tmp_path: Path):
    script, out = tmp_path / "hanging.py", tmp_path / "out"
    script.write_text(HANGING)
    out.mkdir()
    sink = CommandSink("command", [sys.executable, str(script), str(out)], 5.0)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="did not finish in 5s"):
        await sink.deliver(_alert())
    # Decided at the timeout, not when the child's 60 s are over and its stderr closes.
    assert time.monotonic() - started < 20
    pids = [int(pid) for pid in (out / "pids").read_text().split()]
    try:
        await eventually(lambda: all(_gone(pid) for pid in pids), what="program and child gone")
    finally:
        for pid in pids:
            _kill(pid)


async def test_command_fields_lose_control_characters_and_never_read_as_options(tmp_path: Path):
    script, out = tmp_path / "args.py", tmp_path / "out"
    script.write_text(ARGS)
    out.mkdir()
    argv = [sys.executable, str(script), str(out), "{person}", "{summary}", "x{person}"]
    argv += ["--", "{person}", "{summary}"]
    sink = CommandSink("command", argv, 10.0)
    await sink.deliver(_alert(person="-rf\x00\x1b[31m", summary="--help\nforged\u202e\x7f"))
    got = json.loads((out / "argv.json").read_text())
    assert got == [" -rf[31m", " --helpforged", "x-rf[31m", "--", "-rf[31m", "--helpforged"]
