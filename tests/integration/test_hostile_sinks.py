"""NUL and every other control character in a result never stop edged, on each sink: the
text of a result reaches the webhook (a real aiohttp receiver), the log, a command (a real
program) and MQTT (a real mosquitto) as printable text, with the verdict's title and threat
level, and edged keeps running and healthy."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import aiohttp
import pytest

from edged.emulator import Emulator
from edged.ledger.store import Ledger
from tests.support.corpus import verdict_block
from tests.support.edged import edged_running, hostile_config
from tests.support.ledger import all_sent, queue_clip
from tests.support.mqtt import PREFIX, Mosquitto, watching
from tests.support.waiting import until
from tests.support.webhook import Receiver

# Every C0 control, DEL, C1 controls, bidirectional overrides, line and paragraph separators,
# a zero-width joiner, a BOM: in the prose (the summary) and in the verdict's title.
HOSTILE = "".join(map(chr, range(32))) + "\x7f\x85\x9b\u202e\u2066\u2028\u2029\u200d\ufeff"
TEXT = f"Alice{HOSTILE} opens the gate \x1b[2J\x1b]0;owned\x07 at night.\x00\n" + verdict_block(
    "Alice", title=f"Gate{HOSTILE}forced\x00 -rf", threat_level=2
)
NOTE = """\
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
record = {"fields": sys.argv[2:], "stdin": sys.stdin.read()}
out.write_text(json.dumps(record))
"""


def printable(value: object) -> bool:
    return isinstance(value, str) and value.isprintable()


async def healthy(port: int) -> None:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        assert response.status == 200, await response.text()


async def test_control_characters_reach_webhook_log_and_command_as_printable_text(
    emulator: Emulator,
    clip_factory,
    ledger: Ledger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edged.alert")
    script, record = tmp_path / "note.py", tmp_path / "noted.json"
    script.write_text(NOTE)
    argv = [
        sys.executable,
        str(script),
        str(record),
        "{person}",
        "{camera}",
        "{summary}",
        "{title}",
        "{threat_level}",
    ]
    async with Receiver().serve() as receiver:
        sinks = (
            f"    - {{type: webhook, url: {receiver.url}}}\n"
            "    - {type: log}\n"
            f"    - {{type: command, argv: {json.dumps(argv)}}}\n"
        )
        config, metrics = hostile_config(tmp_path, emulator.url, ("Alice", "Bob"), sinks=sinks)
        emulator.options.text = TEXT
        async with edged_running(config) as daemon:
            clip = await queue_clip(ledger, await clip_factory("night.mp4"))
            await until(all_sent(ledger, 3), daemon, what="the alert sent to all three sinks")
            await healthy(metrics)

    (hit,) = receiver.delivered
    alert = hit.alert
    assert alert["clip"]["id"] == clip and alert["threat_level"] == 2
    assert printable(alert["title"]) and alert["title"].startswith("Gate")
    assert alert["title"].endswith("forced -rf")
    assert printable(alert["summary"]) and "opens the gate" in alert["summary"]
    assert b"\\u0000" not in hit.body and b"\\u001b" not in hit.body

    (line,) = [r.getMessage() for r in caplog.records if r.name == "edged.alert"]
    assert printable(line) and "opens the gate" in line

    noted = json.loads(record.read_text())
    person, _camera, summary, title, threat_level = noted["fields"]
    assert person == "Alice" and printable(summary) and "opens the gate" in summary
    assert (title, threat_level) == (alert["title"], "2") and printable(title)
    stdin = json.loads(noted["stdin"])
    assert (stdin["title"], stdin["threat_level"]) == (alert["title"], 2)


async def test_control_characters_reach_mqtt_and_home_assistant_as_printable_text(
    broker: Mosquitto, emulator: Emulator, clip_factory, ledger: Ledger, tmp_path: Path
) -> None:
    sinks = (
        f"    - {{type: mqtt, host: 127.0.0.1, port: {broker.port}, topic_prefix: {PREFIX},"
        " discovery: true}\n"
    )
    config, metrics = hostile_config(tmp_path, emulator.url, ("Alice", "Bob"), sinks=sinks)
    emulator.options.text = TEXT
    async with watching(broker.port) as watcher, edged_running(config) as daemon:
        await queue_clip(ledger, await clip_factory("night.mp4"))
        await until(all_sent(ledger, 1), daemon, what="the alert sent to mqtt")
        await until(
            lambda: watcher.on(f"{PREFIX}/alerts") and watcher.on(f"{PREFIX}/persons/Alice"),
            daemon,
            what="the alert and the person's state on the broker",
        )
        await healthy(metrics)

    (alert,) = [seen.json() for seen in watcher.on(f"{PREFIX}/alerts")]
    assert alert["threat_level"] == 2 and printable(alert["title"]) and printable(alert["summary"])
    # Home Assistant's "last seen" sensor takes this JSON as its attributes.
    attributes = watcher.last(f"{PREFIX}/persons/Alice")
    assert attributes is not None and attributes.json() == alert
    assert b"\x00" not in attributes.payload
