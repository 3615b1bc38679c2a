"""`edged demo`: the whole pipeline on this machine, with no API key and no camera.

Starts the emulator and a local webhook receiver, runs the daemon on a temporary
config that watches a temporary folder, writes a few clips into it the way an NVR
does (temporary name, then rename), and prints each clip's progress and each alert.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import standardwebhooks
from aiohttp import web

from edged.aio import serving
from edged.clip import ClipState
from edged.config.model import parse_config
from edged.emulator import EmulatorOptions, run_emulator
from edged.ledger.store import LEDGER_FILE, Ledger
from edged.media.samples import make_clip
from edged.service.daemon import run_daemon

DEMO_CLIPS = (
    ("alice-at-the-door.mp4", "Alice at the front door"),
    ("empty-yard.mp4", "An empty yard"),
    ("bob-with-a-parcel.mp4", "Bob carrying a parcel"),
)
EXPECTED_ALERTS = 2  # Alice and Bob, once each, at the webhook
#: In the Standard Webhooks form, so that the receiver checks it with the official library.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"edged-demo-webhook-signing-key").decode()
TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_png(path: Path, shade: int) -> None:
    """A plain reference image, encoded with PyAV so the demo needs no image library."""
    frame = av.VideoFrame(64, 64, "rgb24")
    frame.planes[0].update(bytes([shade, 128, 255 - shade]) * (64 * 64))
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 64, "rgb24"
    codec.time_base = Fraction(1, 1)
    path.write_bytes(b"".join(bytes(p) for p in codec.encode(frame)))


def _prepare(work: Path) -> None:
    _write_png(work / "alice.png", 40)
    _write_png(work / "bob.png", 200)
    (work / "nvr").mkdir()


def _config_text(work: Path, api_url: str, callback_port: int, webhook_url: str) -> str:
    return f"""
api:
  base_url: {api_url}
  api_key: demo-key
callback:
  listen: 127.0.0.1:{callback_port}
  public_url: http://127.0.0.1:{callback_port}
  result_timeout: 30s
persons:
  - name: Alice
    image: {work / "alice.png"}
  - name: Bob
    image: {work / "bob.png"}
cameras:
  - name: front-door
    folder: {work / "nvr"}
    pattern: "*.mp4"
    settle: 1s
    since: 1h
storage:
  dir: {work / "state"}
metrics:
  listen: null
alerts:
  sinks:
    - type: webhook
      url: {webhook_url}
      secret: {WEBHOOK_SECRET}
    - type: log
"""


class WebhookPrinter:
    """Receives the daemon's webhook alerts, checks their signatures with the Standard
    Webhooks library (as any receiver would, not with edged's own signer), prints them."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._verifier = standardwebhooks.Webhook(WEBHOOK_SECRET)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            self._verifier.verify(body, headers)
            valid = True
        except standardwebhooks.WebhookVerificationError:
            valid = False
        alert = json.loads(body)
        self.alerts.append(alert)
        print(
            f"  ALERT {alert['person']} on {alert['camera']} (confidence "
            f"{alert['confidence']:.2f}, signature {'valid' if valid else 'INVALID'}): "
            f"{alert['summary'][:80]}",
            flush=True,
        )
        return web.json_response({"ok": True})


async def _write_clips(folder: Path) -> None:
    for name, title in DEMO_CLIPS:
        temporary = folder / f"{name}.part"
        await asyncio.to_thread(make_clip, temporary, seconds=2, title=title)
        # How many NVRs finish a recording: a temporary name, then a rename.
        await asyncio.to_thread(temporary.rename, folder / name)
        print(f"  NVR wrote {name}", flush=True)


async def _watch(ledger_dir: Path, printer: WebhookPrinter) -> bool:
    seen: dict[int, str] = {}
    ledger: Ledger | None = None
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if ledger is None and (ledger_dir / LEDGER_FILE).exists():
                ledger = await asyncio.to_thread(Ledger, ledger_dir)
            if ledger is not None:
                for clip_id, path, state in await asyncio.to_thread(ledger.reports.clip_states):
                    if seen.get(clip_id) != state:
                        seen[clip_id] = state
                        print(f"  clip {clip_id} {Path(path).name}: {state}", flush=True)
                all_done = len(seen) == len(DEMO_CLIPS) and all(
                    s == ClipState.DONE for s in seen.values()
                )
                if all_done and len(printer.alerts) >= EXPECTED_ALERTS:
                    return True
            await asyncio.sleep(0.2)
        return False
    finally:
        if ledger is not None:
            ledger.close()


async def run_demo() -> int:
    logging.getLogger().setLevel(logging.WARNING)
    printer = WebhookPrinter()
    receiver = web.Application()
    receiver.router.add_post("/alerts", printer.handle)
    webhook_port = _free_port()
    async with serving(receiver, "127.0.0.1", webhook_port, shutdown_timeout_s=60.0):
        ok = await _demo(printer, f"http://127.0.0.1:{webhook_port}/alerts")
    if not ok:
        print(f"edged demo: not finished within {TIMEOUT_S:.0f}s", flush=True)
        return 1
    print(f"edged demo: {len(DEMO_CLIPS)} clips done, {len(printer.alerts)} alerts delivered.")
    return 0


async def _demo(printer: WebhookPrinter, webhook_url: str) -> bool:
    """edged and the emulator in a temporary folder, until the demo's alerts arrived (True)
    or the time is up."""
    with tempfile.TemporaryDirectory(prefix="edged-demo-") as tmp:
        work = Path(tmp)
        await asyncio.to_thread(_prepare, work)
        # Callbacks in every shape the service documents, mixed, as a real run may see them.
        options = EmulatorOptions(callback_delay_s=0.3, callback_shape="mixed")
        async with run_emulator(options) as emulator:
            callback_port = _free_port()
            config = parse_config(_config_text(work, emulator.url, callback_port, webhook_url))
            print(f"edged demo: emulator at {emulator.url}, watching {work / 'nvr'}", flush=True)
            shutdown = asyncio.Event()
            daemon = asyncio.create_task(run_daemon(config, shutdown=shutdown), name="daemon")
            try:
                await _write_clips(work / "nvr")
                return await _watch(work / "state", printer)
            finally:
                shutdown.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await daemon
