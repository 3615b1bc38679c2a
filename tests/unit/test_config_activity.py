"""`upload:` and `activity:` of a camera: what is accepted, and what a user is told."""

from __future__ import annotations

import textwrap

import pytest

from edged.activity import Decode, Polygon, Settings
from edged.config.model import (
    Config,
    ConfigError,
    FolderCamera,
    RtspCamera,
    parse_config,
    redacted_yaml,
)


def parse(text: str) -> Config:
    return parse_config("api: {api_key: k}\n" + textwrap.dedent(text), env={})


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.problems


def test_every_clip_is_uploaded_unless_the_camera_says_otherwise() -> None:
    config = parse(
        """\
        cameras:
          - {name: door, folder: /nvr}
          - {name: yard, rtsp: "rtsp://cam/1"}
        """
    )
    assert [(c.upload, c.gated, c.activity) for c in config.cameras] == [
        ("all", False, None),
        ("all", False, None),
    ]


def test_an_activity_camera_of_either_kind_with_zones_masks_and_a_percentage() -> None:
    config = parse(
        """\
        cameras:
          - name: yard
            rtsp: rtsp://cam/1
            upload: activity
            activity:
              zones: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]
              masks: [[[0.8, 0], [1, 0], [1, 0.2]]]
              sensitivity: 0.7
              min_area: 0.1%
          - {name: door, folder: /nvr, upload: activity}
        """
    )
    yard, door = config.cameras
    assert isinstance(yard, RtspCamera) and isinstance(door, FolderCamera)
    assert yard.gated and door.gated
    assert yard.activity is not None
    settings = yard.activity.settings()
    assert settings.zones == (Polygon(((0, 0.4), (1, 0.4), (1, 1), (0, 1))),)
    assert settings.masks == (Polygon(((0.8, 0), (1, 0), (1, 0.2))),)
    assert settings.sensitivity == 0.7 and settings.min_area == pytest.approx(0.001)
    assert door.activity is None  # the whole picture, at the detector's defaults


def test_unusable_zones_and_values_are_each_reported_at_their_key() -> None:
    found = problems(
        """\
        cameras:
          - name: yard
            rtsp: rtsp://cam/1
            upload: activity
            activity:
              zones:
                - [[0, 0], [1, 0]]
                - [[0, 0], [2, 0], [1, 1]]
              masks: [[[0, 0], [0.5, 0.5], [1, 1]]]
              sensitivity: 2
              min_area: lots%
        """
    )
    joined = "\n".join(found)
    assert "cameras[0].activity.zones[0]" in joined and "at least 3 points" in joined
    assert "cameras[0].activity.zones[1]" in joined and "0..1" in joined
    assert "cameras[0].activity.masks[0]" in joined and "no area" in joined
    assert "cameras[0].activity.sensitivity" in joined
    assert "cameras[0].activity.min_area" in joined and "percentage" in joined
    assert len(found) == 5, found


def test_activity_settings_without_the_activity_mode_are_refused() -> None:
    """Zones that gate nothing would mislead whoever drew them."""
    found = problems(
        """\
        cameras:
          - name: yard
            folder: /nvr
            activity: {sensitivity: 0.5}
        """
    )
    assert found == ["cameras[0].activity (line 5): only used with upload: activity"]


def test_an_activity_sub_stream_is_an_rtsp_url_of_an_rtsp_camera() -> None:
    camera = parse(
        """\
        cameras:
          - name: yard
            rtsp: rtsp://cam/main
            upload: activity
            activity: {rtsp: "rtsp://cam/sub"}
        """
    ).cameras[0]
    assert camera.activity is not None and camera.activity.rtsp == "rtsp://cam/sub"
    found = problems(
        """\
        cameras:
          - name: nvr
            folder: /nvr
            upload: activity
            activity: {rtsp: "rtsp://cam/sub"}
          - name: yard
            rtsp: rtsp://cam/main
            upload: activity
            activity: {rtsp: "http://cam/sub"}
        """
    )
    assert len(found) == 2, found
    assert found[0].startswith("cameras[0].activity.rtsp") and "only for rtsp cameras" in found[0]
    assert found[1].startswith("cameras[1].activity.rtsp") and "rtsp://" in found[1]


def test_an_unknown_upload_mode_names_the_ones_there_are() -> None:
    found = problems(
        """\
        cameras:
          - {name: yard, folder: /nvr, upload: motion}
        """
    )
    assert len(found) == 1 and "cameras[0].upload" in found[0]
    assert "'all'" in found[0] and "'activity'" in found[0]


def test_the_defaults_are_the_detectors() -> None:
    config = parse(
        """\
        cameras:
          - {name: yard, folder: /nvr, upload: activity, activity: {}}
        """
    )
    activity = config.cameras[0].activity
    assert activity is not None and activity.settings() == Settings()


def test_keyframes_are_decoded_unless_the_camera_asks_for_every_frame() -> None:
    """`decode: all` for cameras with rare keyframes, `sample_fps` of them examined; the
    effective config (check-config) loads again as it is shown."""
    config = parse(
        """\
        cameras:
          - {name: door, folder: /nvr, upload: activity, activity: {}}
          - name: yard
            rtsp: rtsp://cam/1
            upload: activity
            activity: {decode: all, sample_fps: 5}
        """
    )
    door, yard = (camera.activity for camera in config.cameras)
    assert door is not None and yard is not None
    assert (door.decode, door.sample_fps, door.every_frame) == (Decode.KEYFRAMES, 2.0, False)
    assert (yard.decode, yard.sample_fps, yard.every_frame) == (Decode.ALL, 5.0, True)
    shown = redacted_yaml(config)
    assert "sample_fps: 5.0" in shown and shown.count("sample_fps") == 1, shown
    assert parse_config(shown, env={}).cameras == config.cameras


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        (
            "{decode: every}",
            "cameras[0].activity.decode (line 3): should be 'keyframes' or 'all', got 'every'",
        ),
        (
            "{decode: all, sample_fps: 0}",
            "cameras[0].activity.sample_fps (line 3): should be greater than 0, got 0",
        ),
        (
            "{decode: all, sample_fps: 60}",
            "cameras[0].activity.sample_fps (line 3): should be less than or equal to 30, got 60",
        ),
        (
            "{sample_fps: 4}",
            "cameras[0].activity.sample_fps (line 3): only used with decode: all",
        ),
        (
            "{decode: keyframes, sample_fps: 4}",
            "cameras[0].activity.sample_fps (line 3): only used with decode: all",
        ),
    ],
    ids=["unknown-decode", "no-rate", "too-fast", "rate-alone", "rate-with-keyframes"],
)
def test_decode_mistakes_are_reported_at_their_key(activity: str, expected: str) -> None:
    camera = f"{{name: yard, folder: /nvr, upload: activity, activity: {activity}}}"
    assert problems(f"cameras:\n  - {camera}\n") == [expected]


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        (
            "{name: n, folder: /x, upload: frigate}",
            [
                "cameras[0].upload (line 3): upload: frigate needs preset: frigate (Frigate's"
                " recordings folder)",
                "cameras[0].frigate (line 3): missing: upload: frigate needs a frigate: section"
                " (its MQTT broker)",
            ],
        ),
        (
            '{name: n, rtsp: "rtsp://cam/1", upload: frigate}',
            [
                "cameras[0].upload (line 3): frigate is for a Frigate recordings folder"
                " (folder: with preset: frigate)"
            ],
        ),
        (
            "{name: n, folder: /x, preset: frigate, upload: frigate,"
            " frigate: {host: h, topic_prefix: 'front/#'}}",
            [
                "cameras[0].frigate.topic_prefix (line 3): a topic prefix may not hold '#', got"
                " 'front/#'"
            ],
        ),
        (
            "{name: n, folder: /x, preset: frigate, frigate: {host: h}}",
            ["cameras[0].frigate (line 3): only used with upload: frigate"],
        ),
    ],
    ids=["no-preset-no-section", "rtsp", "wildcard-prefix", "frigate-without-the-mode"],
)
def test_frigate_mode_mistakes_are_reported_at_their_key(camera: str, expected: list[str]) -> None:
    assert problems(f"cameras:\n  - {camera}\n") == expected


def test_a_frigate_camera_with_its_broker() -> None:
    config = parse(
        """\
        cameras:
          - name: nvr
            folder: /media/frigate/recordings
            preset: frigate
            upload: frigate
            frigate: {host: mqtt.lan, password: s3cret, labels: [person, dog], wait: 1m}
        """
    )
    camera = config.cameras[0]
    assert isinstance(camera, FolderCamera) and camera.gated and camera.frigate is not None
    assert camera.frigate.labels == ("person", "dog") and camera.frigate.wait == 60.0
    assert camera.frigate.severities == ("alert", "detection") and camera.frigate.events
