"""The MQTT sink against a real mosquitto (Debian's), started here on a free port.

`edged run` in this process delivers alerts to the broker; a watcher subscribed to everything
checks the topics, the payloads, the retained state, Home Assistant's discovery configs
(against the rules of its MQTT schema), camera status from ledger outages, and the last will
of a real `edged run` killed with SIGKILL. The broker outage test is in test_mqtt_outage.py;
the broker and the watcher both tests use are in tests/support/mqtt.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import pytest

from edged.alerts.camera_status import CameraWatch
from edged.clip import NewClip
from edged.emulator import Emulator
from edged.ledger.store import Ledger
from tests.support.edged import INSTANCE, edged_running
from tests.support.edged_process import running
from tests.support.environment import free_port
from tests.support.ledger import CAMERA, all_sent, expected_ids, queue_clip, reached
from tests.support.mqtt import (
    PREFIX,
    Mosquitto,
    Seen,
    watching,
)
from tests.support.waiting import eventually, until

# skipped without mosquitto on a workstation, failed under CI=true
pytestmark = pytest.mark.usefixtures("mosquitto_installed")

# ---- a broker and a watcher -----------------------------------------------------------------


def mqtt_config(tmp_path: Path, api_url: str, port: int, *, extra_sinks: str = "") -> Path:
    callback = free_port()
    (tmp_path / "nvr").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api: {{base_url: {api_url}, api_key: test-key}}\n"
        f"callback: {{listen: 127.0.0.1:{callback}, public_url: http://127.0.0.1:{callback}}}\n"
        "persons:\n"
        "  - {name: Alice, url: https://example.com/alice.jpg}\n"
        "  - {name: Bob, url: https://example.com/bob.jpg}\n"
        f"cameras: [{{name: {CAMERA}, folder: {tmp_path / 'nvr'}}}]\n"
        f"storage: {{dir: {tmp_path / 'state'}}}\n"
        "alerts:\n  cooldown: 0s\n  sinks:\n"
        f"    - {{type: mqtt, host: 127.0.0.1, port: {port}, topic_prefix: {PREFIX},"
        " discovery: true}\n"
        "    - {type: log}\n"
        f"{extra_sinks}"
        f"instance: {INSTANCE}\n"
        f"metrics: {{listen: 127.0.0.1:{free_port()}}}\n"  # not the default port, shared
    )
    return path


# ---- Home Assistant's rules for the discovery configs we send -------------------------------

# Keys every MQTT entity accepts (availability, device, origin, attributes, identity).
_COMMON = {"name", "unique_id", "device", "origin", "icon", "qos", "object_id"}
_COMMON |= {"availability_topic", "payload_available", "payload_not_available"}
_COMMON |= {"json_attributes_topic", "json_attributes_template"}
_COMMON |= {"enabled_by_default", "entity_category"}
_PLATFORMS: dict[str, tuple[set[str], set[str]]] = {  # required keys, platform keys
    "sensor": ({"state_topic"}, {"value_template", "device_class", "unit_of_measurement"}),
    "binary_sensor": (
        {"state_topic"},
        {"payload_on", "payload_off", "device_class", "value_template", "off_delay"},
    ),
    "image": (set(), {"image_topic", "url_topic", "content_type", "image_encoding"}),
}
_DISCOVERY_TOPIC = re.compile(
    r"homeassistant/(?P<platform>\w+)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config"
)
_DEVICE_CLASSES = {"sensor": {"timestamp"}, "binary_sensor": {"connectivity"}}


def check_discovery(topic: str, config: dict[str, Any]) -> str:
    """Fails the test where Home Assistant's discovery schema would refuse the config;
    returns the platform."""
    match = _DISCOVERY_TOPIC.fullmatch(topic)
    assert match, f"not a discovery topic: {topic}"
    platform = match["platform"]
    required, own = _PLATFORMS[platform]
    assert required <= set(config), (topic, required - set(config))
    allowed = _COMMON | required | own
    assert set(config) <= allowed, (topic, set(config) - allowed)
    assert isinstance(config["unique_id"], str) and config["unique_id"]
    device = config["device"]
    assert device["identifiers"] and all(isinstance(i, str) for i in device["identifiers"])
    assert isinstance(device["name"], str) and isinstance(config["origin"]["name"], str)
    assert config["availability_topic"] == f"{PREFIX}/availability"
    assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
    for key in ("state_topic", "json_attributes_topic", "image_topic", "availability_topic"):
        if key in config:
            assert "+" not in config[key] and "#" not in config[key] and "//" not in config[key]
    if "device_class" in config:
        assert config["device_class"] in _DEVICE_CLASSES[platform]
    if platform == "image":
        assert ("image_topic" in config) != ("url_topic" in config)
        assert "content_type" not in config or "image_topic" in config
    return platform


# ---- the tests ------------------------------------------------------------------------------


async def test_alerts_persons_snapshots_cameras_and_discovery_on_a_real_broker(
    broker: Mosquitto, emulator: Emulator, clip_factory, ledger: Ledger, tmp_path: Path
):
    config = mqtt_config(tmp_path, emulator.url, broker.port)
    async with watching(broker.port) as watcher, edged_running(config) as daemon:
        await until(
            lambda: (
                (seen := watcher.last(f"{PREFIX}/availability")) is not None
                and seen.payload == b"online"
            ),
            daemon,
            what="edged online",
        )
        clip = await queue_clip(ledger, await clip_factory("door.mp4", title="Alice at the door"))
        await until(reached(ledger, {clip: "done"}), daemon, what="the clip done")
        await until(all_sent(ledger, 2), daemon, what="the alert sent to mqtt and log")
        await until(
            lambda: watcher.on(f"{PREFIX}/alerts") and watcher.on(f"{PREFIX}/cameras/porch/status"),
            daemon,
            what="the alert and the camera status on the broker",
        )

        # A camera outage in the ledger (as the RTSP source records one) shows as offline.
        outage = await asyncio.to_thread(ledger.outages.open_outage, CAMERA, "stream lost")
        status = f"{PREFIX}/cameras/{CAMERA}/status"
        await until(lambda: watcher.last(status).payload == b"offline", daemon, what="offline")  # type: ignore[union-attr]
        await asyncio.to_thread(ledger.outages.close_outage, outage)
        await until(lambda: watcher.last(status).payload == b"online", daemon, what="online")  # type: ignore[union-attr]

    (alert,) = [seen.json() for seen in watcher.on(f"{PREFIX}/alerts")]
    (alert_id,) = await expected_ids(ledger, [(clip, "Alice")])
    assert alert["alert_id"] == alert_id
    assert (alert["person"], alert["camera"], alert["instance"]) == ("Alice", CAMERA, INSTANCE)
    assert alert["confidence"] == pytest.approx(0.92)
    start, end = (datetime.fromisoformat(alert["clip"][k]) for k in ("start", "end"))
    assert (end - start).total_seconds() == pytest.approx(1.0) and start.tzinfo is not None
    assert alert["moment_s"] == 0.5 and alert["clip"]["id"] == clip
    assert "Alice appears near the door" in alert["summary"]
    snapshot = alert["snapshot"]
    assert snapshot["topic"] == f"{PREFIX}/persons/Alice/snapshot" and snapshot["width"] == 320
    assert "file" not in snapshot

    person = watcher.last(f"{PREFIX}/persons/Alice")
    assert person is not None and person.json() == alert
    picture = watcher.last(f"{PREFIX}/persons/Alice/snapshot")
    assert picture is not None and picture.payload.startswith(b"\xff\xd8\xff")
    with av.open(io.BytesIO(picture.payload)) as decoded:
        assert next(decoded.decode(video=0)).width == 320
    assert [s.payload for s in watcher.on(status)] == [b"online", b"offline", b"online"]
    assert watcher.last(f"{PREFIX}/availability").payload == b"offline"  # type: ignore[union-attr]

    # Retained for whoever subscribes later: the last sighting, its picture, the camera.
    async with watching(broker.port) as late:
        # 4 states (availability, last sighting, its picture, the camera) and 5 configs.
        await eventually(lambda: len(late.seen) >= 9, what="the retained messages")
    retained = {seen.topic: seen for seen in late.seen}
    assert all(seen.retain for seen in late.seen)
    assert retained[f"{PREFIX}/persons/Alice"].json() == alert
    assert retained[f"{PREFIX}/persons/Alice/snapshot"].payload == picture.payload
    assert retained[f"{PREFIX}/cameras/{CAMERA}/status"].payload == b"online"
    assert retained[f"{PREFIX}/availability"].payload == b"offline"  # said by a clean stop
    assert f"{PREFIX}/alerts" not in retained

    configs = {
        seen.topic: seen.json() for seen in late.seen if seen.topic.startswith("homeassistant/")
    }
    platforms = sorted(check_discovery(topic, value) for topic, value in configs.items())
    assert platforms == ["binary_sensor", "image", "image", "sensor", "sensor"]
    unique_ids = [value["unique_id"] for value in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    by_topic = {
        value.get("state_topic") or value.get("image_topic"): value for value in configs.values()
    }
    assert by_topic[f"{PREFIX}/persons/Alice"]["value_template"] == "{{ value_json.seen_at }}"
    assert datetime.fromisoformat(alert["seen_at"]).tzinfo is not None  # a timestamp sensor
    assert by_topic[f"{PREFIX}/persons/Bob/snapshot"]["content_type"] == "image/jpeg"
    camera = by_topic[f"{PREFIX}/cameras/{CAMERA}/status"]
    assert (camera["payload_on"], camera["payload_off"]) == ("online", "offline")
    assert len({json.dumps(value["device"]) for value in configs.values()}) == 1  # one device


async def test_the_last_will_says_offline_when_edged_is_killed(
    broker: Mosquitto, emulator: Emulator, tmp_path: Path
):
    config = mqtt_config(tmp_path, emulator.url, broker.port)
    availability = f"{PREFIX}/availability"
    async with watching(broker.port) as watcher, running(config, serving=False) as edged:
        await edged.until(
            lambda: (seen := watcher.last(availability)) is not None and seen.payload == b"online",
            "edged online",
        )
        code = await edged.stop(signal.SIGKILL, timeout_s=15)
        await eventually(
            lambda: watcher.last(availability).payload == b"offline",  # type: ignore[union-attr]
            what="the last will",
        )
    assert code == -signal.SIGKILL
    async with watching(broker.port) as late:
        await eventually(lambda: late.last(availability) is not None, what="retained will")
    assert late.last(availability) == Seen(availability, b"offline", True)


def test_camera_status_from_clips_and_outages(tmp_path: Path) -> None:
    """The rule behind <prefix>/cameras/<camera>/status, on a ledger with a clock."""
    now = [1000.0]
    ledger = Ledger(tmp_path, clock=lambda: now[0])
    watch = CameraWatch(["porch", "yard"], offline_after_s=60.0, started_at=1000.0)
    quiet = CameraWatch(["yard"], offline_after_s=None, started_at=1000.0)

    def clip(camera: str) -> None:
        ledger.clips.add(NewClip(camera, tmp_path / f"{camera}-{now[0]}.mp4", 1))

    def refresh(watch: CameraWatch, at: float) -> dict[str, str]:
        activity = ledger.reports.camera_activity(watch.after_clip_id)
        return watch.update(activity, ledger.reports.camera_outages(), at)

    assert refresh(watch, 1030.0) == {"porch": "online", "yard": "online"}  # just started
    now[0] = 1090.0
    clip("porch")
    clip("gate")  # a camera named by a preset's paths appears with its first clip
    assert refresh(watch, 1100.0) == {"porch": "online", "yard": "offline", "gate": "online"}
    assert refresh(quiet, 1100.0)["yard"] == "online"  # motion-only: outages alone count
    outage = ledger.outages.open_outage("porch", "stream lost")
    assert refresh(watch, 1110.0)["porch"] == "offline"
    now[0] = 1200.0
    ledger.outages.close_outage(outage)
    assert refresh(watch, 1210.0)["porch"] == "online"  # back: the outage's end counts
    assert refresh(watch, 1300.0)["porch"] == "offline"  # and then nothing for 100 s
    ledger.outages.open_outage("yard", "folder gone")
    assert refresh(quiet, 1300.0)["yard"] == "offline"
    ledger.close()
