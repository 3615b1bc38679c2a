"""Path templates: camera and start time from the paths NVRs write, DST edges, option errors."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from edged.nvr.presets import (
    PRESETS,
    PathInfo,
    PathTemplate,
    camera_allowed,
    sanitize_camera,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
# The docstring's example: <camera>/<YYYYMMDD>/<HHMMSS>.mp4
DAY_FOLDERS = (
    r"(?P<camera>[^/]+)/(?P<Y>\d{4})(?P<m>\d\d)(?P<d>\d\d)/(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)\.mp4"
)
EPOCH = r"(?P<camera>[^/]+)/(?P<epoch>\w+)\.mp4"
TWELVE_HOUR = (
    r"(?P<camera>[a-z]+)_(?P<Y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)_(?P<I>\d\d)-(?P<M>\d\d)(?P<p>AM|PM)?"
    r"\.mp4"
)
OFFSET = (
    r"(?P<camera>[^/]+)/(?P<Y>\d{4})(?P<m>\d\d)(?P<d>\d\d)T(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)"
    r"(?P<z>[^.]+)\.mp4"
)
SHORT_YEAR = (
    r"(?P<camera>[a-z]+)-(?P<y>\d\d)(?P<m>\d\d)(?P<d>\d\d)-(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)"
    r"\.(?P<f>\d+)\.mp4"
)
DATE_ONLY = r"(?P<Y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)/[^/]+\.mp4"


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, us, tzinfo=UTC)


@pytest.fixture
def machine_zone() -> Iterator[Callable[[str], None]]:
    """Sets the process's local zone (TZ) for a test and restores it afterwards."""
    saved = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


# (preset, options, relative path, expected camera, expected start; None camera: no match)
Row = tuple[str, dict[str, str], str, str | None, datetime | None]
BER, NYC = {"timezone": BERLIN}, {"timezone": NEW_YORK}

MATCHES: list[Row] = [
    # Frigate: UTC, whatever the machine's zone.
    ("frigate", {}, "2024-05-01/13/front_door/05.12.mp4", "front_door", utc(2024, 5, 1, 13, 5, 12)),
    (
        "frigate",
        {},
        "recordings/2024-05-01/13/front_door/05.12.mp4",
        "front_door",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    (
        "frigate",
        {},
        "2024-12-31/23/back-yard/59.59.mp4",
        "back-yard",
        utc(2024, 12, 31, 23, 59, 59),
    ),
    ("frigate", {}, "2024-05-01/00/Front Door/00.00.mp4", "Front_Door", utc(2024, 5, 1)),
    ("frigate", {}, "2024-05-01/13/front_door/05.12.mkv", None, None),
    ("frigate", {}, "2024-05-01/front_door/05.12.mp4", None, None),
    ("frigate", {}, "2024-05-01/13/front_door/5.12.mp4", None, None),
    ("frigate", {}, "2024-13-01/13/front_door/05.12.mp4", None, None),
    ("frigate", {}, "2024-05-01/25/front_door/05.12.mp4", None, None),
    ("frigate", {}, "2024-05-01/13/front_door/05.61.mp4", None, None),
    ("frigate", {}, "2024-05-01/13/front_door/05.12.mp4.part", None, None),
    ("frigate", {}, "/2024-05-01/13/front_door/05.12.mp4", None, None),
    ("frigate", {}, "2024-05-01/13/../05.12.mp4", None, None),
    ("frigate", {}, "2024-05-01//13/front_door/05.12.mp4", None, None),
    # ZoneMinder Medium: the day only, so no start; Deep: the time, local.
    ("zoneminder", BER, "3/2024-05-01/1234/1234-video.mp4", "3", None),
    ("zoneminder", BER, "3/2024-05-01/1234/1234-video-1.mp4", "3", None),
    ("zoneminder", BER, "3/2024-05-01/1234/1234-video.h264.mp4", "3", None),
    ("zoneminder", BER, "events/12/2024-05-01/98765/98765-video.mkv", "12", None),
    ("zoneminder", BER, "FrontDoor/2024-05-01/1234/1234-video.mp4", "FrontDoor", None),
    ("zoneminder", BER, "3/24/05/01/13/05/12/1234-video.mp4", "3", utc(2024, 5, 1, 11, 5, 12)),
    ("zoneminder", BER, "3/2024-05-01/1234/1235-video.mp4", None, None),
    ("zoneminder", BER, "3/2024-05-01/1234/snapshot.jpg", None, None),
    ("zoneminder", BER, "3/2024-05-01/1234/00001-capture.jpg", None, None),
    ("zoneminder", BER, "3/2024-05-01/.1234/1234-video.mp4", None, None),
    ("zoneminder", BER, "3/2024-02-30/1234/1234-video.mp4", None, None),
    ("zoneminder", BER, "3/1234/1234-video.mp4", None, None),
    # Blue Iris: local time; camera from the file name, any folders above it.
    ("blueiris", NYC, "FrontDoor.20240501_130512.mp4", "FrontDoor", utc(2024, 5, 1, 17, 5, 12)),
    ("blueiris", NYC, "New/FrontDoor.20240501_130512.mp4", "FrontDoor", utc(2024, 5, 1, 17, 5, 12)),
    ("blueiris", NYC, "Stored/2024/Drive.20240115_080000.mkv", "Drive", utc(2024, 1, 15, 13)),
    ("blueiris", NYC, "Cam.1.20240501_130512.MP4", "Cam.1", utc(2024, 5, 1, 17, 5, 12)),
    ("blueiris", NYC, "FrontDoor.20240501_130512.bvr", None, None),
    ("blueiris", NYC, "FrontDoor.20240501_1305.mp4", None, None),
    ("blueiris", NYC, "FrontDoor20240501_130512.mp4", None, None),
    ("blueiris", NYC, "FrontDoor.20240501_130512.jpg", None, None),
    ("blueiris", NYC, "FrontDoor.20240501_246000.mp4", None, None),
    # Synology: the epoch wins over the local time in the name.
    (
        "synology",
        BER,
        "FrontDoor/20240501PM/FrontDoor20240501-150512-1714568712.mp4",
        "FrontDoor",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    (  # the name says 13:05 Berlin (11:05Z), the epoch 13:05Z: the epoch wins
        "synology",
        BER,
        "FrontDoor/20240501PM/FrontDoor20240501-130512-1714568712.mp4",
        "FrontDoor",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    (
        "synology",
        BER,
        "Front Door/20240501PM/Front Door20240501-150512-1714568712.mp4",
        "Front_Door",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    (
        "synology",
        BER,
        "surveillance/Gate-2/20240501AM/Gate-220240501-093000-1714548600.mp4",
        "Gate-2",
        utc(2024, 5, 1, 7, 30),
    ),
    (  # a valid epoch even wins over a date that is no date
        "synology",
        BER,
        "Gate/20240501PM/Gate20241301-150512-1714568712.mp4",
        "Gate",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    # Missing or garbage epoch: the local time in the name.
    (
        "synology",
        BER,
        "Gate/20240501PM/Gate20240501-150512.mp4",
        "Gate",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    (
        "synology",
        BER,
        "Gate/20240501PM/Gate20240501-150512-.mp4",
        "Gate",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    (
        "synology",
        BER,
        "Gate/20240501PM/Gate20240501-150512-x1.mp4",
        "Gate",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    (
        "synology",
        BER,
        "Gate/20240501PM/Gate20240501-150512-42.mp4",
        "Gate",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    ("synology", BER, "Gate/20240501PM/Gate20241301-150512-x1.mp4", None, None),
    ("synology", BER, "Gate/20240501PM/Door20240501-150512-1714568712.mp4", None, None),
    ("synology", BER, "Gate/20240501/Gate20240501-150512-1714568712.mp4", None, None),
    ("synology", BER, "Gate20240501-150512-1714568712.mp4", None, None),
    # Custom.
    (
        "custom",
        {"path_regex": DAY_FOLDERS} | BER,
        "gate/20240501/130512.mp4",
        "gate",
        utc(2024, 5, 1, 11, 5, 12),
    ),
    (
        "custom",
        {"path_regex": DAY_FOLDERS} | NYC,
        "Front Door/20240501/130512.mp4",
        "Front_Door",
        utc(2024, 5, 1, 17, 5, 12),
    ),
    ("custom", {"path_regex": DAY_FOLDERS}, "x/gate/20240501/130512.mp4", None, None),
    ("custom", {"path_regex": DAY_FOLDERS}, "gate/20240501/130512.mp4.tmp", None, None),
    ("custom", {"path_regex": EPOCH}, "gate/1714568712.mp4", "gate", utc(2024, 5, 1, 13, 5, 12)),
    (
        "custom",
        {"path_regex": EPOCH},
        "gate/1714568712345.mp4",
        "gate",
        utc(2024, 5, 1, 13, 5, 12, 345000),
    ),
    ("custom", {"path_regex": EPOCH}, "gate/garbage.mp4", None, None),
    ("custom", {"path_regex": EPOCH}, "gate/86400.mp4", None, None),
    ("custom", {"path_regex": EPOCH}, "gate/99999999999999999999999.mp4", None, None),
    (
        "custom",
        {"path_regex": TWELVE_HOUR} | BER,
        "porch_2024-05-01_01-05PM.mp4",
        "porch",
        utc(2024, 5, 1, 11, 5),
    ),
    (
        "custom",
        {"path_regex": TWELVE_HOUR} | BER,
        "porch_2024-05-01_12-05AM.mp4",
        "porch",
        utc(2024, 4, 30, 22, 5),
    ),
    ("custom", {"path_regex": TWELVE_HOUR} | BER, "porch_2024-05-01_13-05PM.mp4", None, None),
    ("custom", {"path_regex": TWELVE_HOUR} | BER, "porch_2024-05-01_01-05.mp4", None, None),
    (
        "custom",
        {"path_regex": OFFSET},
        "cam/20240501T130512+0200.mp4",
        "cam",
        utc(2024, 5, 1, 11, 5, 12),
    ),
    (
        "custom",
        {"path_regex": OFFSET},
        "cam/20240501T130512-05:00.mp4",
        "cam",
        utc(2024, 5, 1, 18, 5, 12),
    ),
    (
        "custom",
        {"path_regex": OFFSET},
        "cam/20240501T130512Z.mp4",
        "cam",
        utc(2024, 5, 1, 13, 5, 12),
    ),
    ("custom", {"path_regex": OFFSET}, "cam/20240501T130512+25.mp4", None, None),
    ("custom", {"path_regex": OFFSET}, "cam/20240501T130512CEST.mp4", None, None),
    (
        "custom",
        {"path_regex": SHORT_YEAR, "timezone": "UTC"},
        "lobby-240501-130512.25.mp4",
        "lobby",
        utc(2024, 5, 1, 13, 5, 12, 250000),
    ),
    (
        "custom",
        {"path_regex": DATE_ONLY, "default_camera": "yard"},
        "2024-05-01/a.mp4",
        "yard",
        None,
    ),
    ("custom", {"path_regex": DATE_ONLY, "default_camera": "yard"}, "2024-05-32/a.mp4", None, None),
]


def _row_id(row: Row) -> str:
    return f"{row[0]}:{row[2]}"


@pytest.mark.parametrize("row", MATCHES, ids=_row_id)
def test_match(row: Row, machine_zone: Callable[[str], None]) -> None:
    preset, options, path, camera, start = row
    machine_zone("Asia/Kolkata")  # none of the zones above: the option or UTC must decide
    info = PathTemplate.create(preset, **options).match(path)
    assert info == (None if camera is None else PathInfo(camera, start))


# Wall-clock times around DST changes, read with fold=0: a time in the spring-forward gap
# with the offset before the gap, an ambiguous time as the first of its two instants.
DST: list[tuple[str, tuple[int, int, int, int, int], datetime]] = [
    (BERLIN, (2024, 1, 15, 12, 0), utc(2024, 1, 15, 11)),  # winter, +1
    (BERLIN, (2024, 7, 15, 12, 0), utc(2024, 7, 15, 10)),  # summer, +2
    (BERLIN, (2024, 3, 31, 2, 30), utc(2024, 3, 31, 1, 30)),  # gap: 02:30 is 03:30 CEST
    (BERLIN, (2024, 10, 27, 2, 30), utc(2024, 10, 27, 0, 30)),  # ambiguous: the CEST one
    (NEW_YORK, (2024, 1, 15, 12, 0), utc(2024, 1, 15, 17)),
    (NEW_YORK, (2024, 7, 15, 12, 0), utc(2024, 7, 15, 16)),
    (NEW_YORK, (2024, 3, 10, 2, 30), utc(2024, 3, 10, 7, 30)),  # gap: 02:30 is 03:30 EDT
    (NEW_YORK, (2024, 11, 3, 1, 30), utc(2024, 11, 3, 5, 30)),  # ambiguous: the EDT one
]

# A path that names the local time Y-m-d H:M:00, per local-time preset.
LOCAL_PATHS: dict[str, tuple[dict[str, str], str]] = {
    "blueiris": ({}, "Cam.{Y}{m}{d}_{H}{M}00.mp4"),
    "zoneminder": ({}, "7/{y}/{m}/{d}/{H}/{M}/00/4321-video.mp4"),
    "synology": ({}, "Cam/{Y}{m}{d}AM/Cam{Y}{m}{d}-{H}{M}00.mp4"),
    "custom": ({"path_regex": DAY_FOLDERS}, "Cam/{Y}{m}{d}/{H}{M}00.mp4"),
}


def _local_path(preset: str, wall: tuple[int, int, int, int, int]) -> tuple[dict[str, str], str]:
    options, form = LOCAL_PATHS[preset]
    year, month, day, hour, minute = wall
    parts = {"Y": f"{year:04}", "y": f"{year % 100:02}", "m": f"{month:02}", "d": f"{day:02}"}
    return options, form.format(**parts, H=f"{hour:02}", M=f"{minute:02}")


@pytest.mark.parametrize("preset", sorted(LOCAL_PATHS))
@pytest.mark.parametrize(("zone", "wall", "start"), DST, ids=lambda v: str(v))
def test_local_time_with_timezone(
    preset: str,
    zone: str,
    wall: tuple[int, int, int, int, int],
    start: datetime,
    machine_zone: Callable[[str], None],
) -> None:
    machine_zone("UTC")
    options, path = _local_path(preset, wall)
    info = PathTemplate.create(preset, timezone=zone, **options).match(path)
    assert info is not None
    assert info.start == start


@pytest.mark.parametrize("preset", sorted(LOCAL_PATHS))
@pytest.mark.parametrize(("zone", "wall", "start"), DST, ids=lambda v: str(v))
def test_local_time_defaults_to_machine_zone(
    preset: str,
    zone: str,
    wall: tuple[int, int, int, int, int],
    start: datetime,
    machine_zone: Callable[[str], None],
) -> None:
    """Without timezone, the machine's zone with its DST rules, not today's fixed offset."""
    machine_zone(zone)
    options, path = _local_path(preset, wall)
    info = PathTemplate.create(preset, **options).match(path)
    assert info is not None
    assert info.start == start


def test_frigate_ignores_machine_zone(machine_zone: Callable[[str], None]) -> None:
    machine_zone(NEW_YORK)
    info = PathTemplate.create("frigate").match("2024-03-10/02/yard/30.00.mp4")
    assert info == PathInfo("yard", utc(2024, 3, 10, 2, 30))


def test_one_folder_many_cameras() -> None:
    template = PathTemplate.create("frigate")
    paths = [f"2024-05-01/13/{name}/00.00.mp4" for name in ("door", "yard", "door", "garage")]
    cameras = [info.camera for path in paths if (info := template.match(path))]
    assert cameras == ["door", "yard", "door", "garage"]
    allowed = ["door", "garage"]
    assert [c for c in cameras if camera_allowed(c, allowed)] == ["door", "door", "garage"]


ERRORS: list[tuple[str, dict[str, str], str]] = [
    (
        "frigat",
        {},
        r"unknown preset 'frigat' \(use one of blueiris, custom, .*did you mean 'frigate'",
    ),
    ("Frigate", {}, r"unknown preset 'Frigate'.*did you mean 'frigate'"),
    ("", {}, r"unknown preset ''"),
    ("custom", {}, r"^preset custom needs a path_regex$"),
    ("frigate", {"path_regex": DAY_FOLDERS}, r"path_regex is only used with preset custom"),
    ("frigate", {"timezone": BERLIN}, r"frigate names recordings in UTC; timezone does not apply"),
    ("blueiris", {"timezone": "Europe/Berln"}, r"unknown timezone 'Europe/Berln' \(use an IANA"),
    ("blueiris", {"timezone": "europe/berlin"}, r"unknown timezone 'europe/berlin'"),
    ("blueiris", {"timezone": "../etc/passwd"}, r"unknown timezone '../etc/passwd'"),
    ("blueiris", {"timezone": ""}, r"unknown timezone ''"),
    ("custom", {"path_regex": r"(?P<camera>[^/]+"}, r"path_regex does not compile: missing \)"),
    ("custom", {"path_regex": r"(?P<Y>\d{4})\.mp4"}, r"needs a named group \(\?P<camera>"),
    ("custom", {"path_regex": r"(?P<cam>\w+)\.mp4"}, r"unknown group names cam \(use camera, Y"),
    ("custom", {"path_regex": r"(?P<camera>\w+)/(?P<Y>\d+)/(?P<y>\d+)"}, r"not both"),
    ("custom", {"path_regex": r"(?P<camera>\w+)/(?P<Y>\d+)-(?P<m>\d+)"}, r"missing d$"),
    ("custom", {"path_regex": r"(?P<camera>\w+)/(?P<m>\d+)"}, r"missing Y or y, d$"),
    ("custom", {"path_regex": r"(?P<camera>\w+)/(?P<H>\d+)"}, r"a time of day needs a date"),
    (
        "custom",
        {"path_regex": r"(?P<camera>\w+)/(?P<Y>\d+)(?P<m>\d+)(?P<d>\d+)(?P<H>\d+)(?P<I>\d+)"},
        r"use H \(24-hour\) or I with p \(12-hour\), not both",
    ),
    (
        "custom",
        {"path_regex": r"(?P<camera>\w+)/(?P<Y>\d+)(?P<m>\d+)(?P<d>\d+)(?P<I>\d+)"},
        r"I \(12-hour\) and p \(AM/PM\) go together",
    ),
    (
        "custom",
        {"path_regex": r"(?P<camera>\w+)/(?P<Y>\d+)(?P<m>\d+)(?P<d>\d+)(?P<H>\d+)(?P<S>\d+)"},
        r"S needs M",
    ),
]


@pytest.mark.parametrize(("preset", "options", "message"), ERRORS, ids=lambda v: str(v))
def test_create_errors(preset: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PathTemplate.create(preset, **options)


def test_create_accepts_each_preset() -> None:
    regex = {"path_regex": DAY_FOLDERS}
    for preset in sorted(PRESETS):
        template = PathTemplate.create(preset, **(regex if preset == "custom" else {}))
        assert template.preset == preset


def test_custom_without_camera_group_uses_default_camera() -> None:
    template = PathTemplate.create(
        "custom", path_regex=r"(?P<epoch>\d+)\.mp4", default_camera="Back Yard"
    )
    assert template.match("1714568712.mp4") == PathInfo("Back_Yard", utc(2024, 5, 1, 13, 5, 12))
    assert template.match("gate/1714568712.mp4") is None


def test_path_info_is_frozen() -> None:
    info = PathInfo("door", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.camera = "yard"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("front_door", "front_door"),
        ("Front Door", "Front_Door"),
        ("Caméra 2", "Camera_2"),
        ("cam#1 (north)", "cam_1_north_"),
        ("a/b", "a_b"),
        ("Gate-2.v1", "Gate-2.v1"),
    ],
)
def test_sanitize_camera(name: str, expected: str) -> None:
    assert sanitize_camera(name) == expected


@pytest.mark.parametrize(
    ("camera", "allowed", "expected"),
    [
        ("door", None, True),
        ("door", [], False),
        ("door", ["yard", "door"], True),
        ("door", ["Door"], False),
        ("Front_Door", ["Front Door"], True),
        ("Front_Door", ("Front_Door",), True),
        ("garage", ["door"], False),
    ],
)
def test_camera_allowed(camera: str, allowed: list[str] | None, expected: bool) -> None:
    assert camera_allowed(camera, allowed) is expected
