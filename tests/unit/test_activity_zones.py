"""Zones and masks: validation names the bad point, rasterisation is resolution independent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edged.activity import ActivityError, Polygon, Region, Settings

SQUARE = [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([[0.1, 0.1], [0.9, 0.1]], r"zones\[0\]: a polygon needs at least 3 points, got 2"),
        ([], r"zones\[0\]: a polygon needs at least 3 points, got 0"),
        ([[0.1, 0.1], [1.2, 0.1], [0.5, 0.9]], r"zones\[0\]\[1\]\.x: 1.2 is outside 0..1"),
        ([[0.1, -0.5], [0.9, 0.1], [0.5, 0.9]], r"zones\[0\]\[0\]\.y: -0.5 is outside 0..1"),
        ([[0.1, "a"], [0.9, 0.1], [0.5, 0.9]], r"zones\[0\]\[0\]\.y: expected a number in 0..1"),
        ([[0.1, 0.1], [True, 0.1], [0.5, 0.9]], r"zones\[0\]\[1\]\.x: expected a number"),
        ([[0.1, 0.1], [math.nan, 0.1], [0.5, 0.9]], r"zones\[0\]\[1\]\.x: expected a finite"),
        ([[0.1, 0.1], [0.9], [0.5, 0.9]], r"zones\[0\]\[1\]: expected a point \[x, y\]"),
        ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], r"zones\[0\]: the points enclose no area"),
        ("0.1,0.1", r"zones\[0\]: expected a list of \[x, y\] points"),
    ],
)
def test_a_bad_polygon_is_refused_with_its_path(raw: object, message: str) -> None:
    with pytest.raises(ActivityError, match=message):
        Polygon.parse(raw, where="zones[0]")


def test_integers_are_coordinates() -> None:
    assert Polygon.parse([[0, 0], [1, 0], [1, 1]]).points == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))


@pytest.mark.parametrize(("width", "height"), [(64, 36), (320, 180), (1280, 720)])
def test_a_square_covers_its_share_at_any_resolution(width: int, height: int) -> None:
    mask = Polygon.parse(SQUARE).mask(width, height)
    assert mask.shape == (height, width)
    assert mask.mean() == pytest.approx(0.25, abs=0.03)
    assert mask[height // 2, width // 2] and not mask[0, 0] and not mask[-1, -1]


def test_a_triangle_is_filled_on_its_side_only() -> None:
    mask = Polygon.parse([[0, 0], [1, 0], [0, 1]]).mask(100, 100)
    assert mask.mean() == pytest.approx(0.5, abs=0.02)
    assert mask[10, 10] and not mask[90, 90]


def test_masks_are_cut_out_of_zones() -> None:
    left = Polygon.parse([[0, 0], [0.5, 0], [0.5, 1], [0, 1]])
    corner = Polygon.parse([[0, 0], [0.25, 0], [0.25, 0.5], [0, 0.5]])
    region = Region.build(100, 100, [left], [corner])
    assert region.zones[0].mean() == pytest.approx(0.5 - 0.125, abs=0.02)
    assert not region.analysed[10, 10] and region.analysed[80, 10]
    assert not region.analysed[50, 80]


def test_no_zone_is_the_whole_frame_less_masks() -> None:
    corner = Polygon.parse([[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]])
    region = Region.build(40, 20, masks=[corner])
    assert len(region.zones) == 1
    # The mask grows by a pixel all round (scaling blends its edge into the neighbours).
    assert np.count_nonzero(region.analysed) == 40 * 20 - 21 * 11


def test_a_zone_masked_away_is_refused() -> None:
    zone = Polygon.parse(SQUARE)
    everything = Polygon.parse([[0, 0], [1, 0], [1, 1], [0, 1]])
    with pytest.raises(ActivityError, match=r"zones\[0\]: no pixel is left at 32x18"):
        Region.build(32, 18, [zone], [everything])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sensitivity", 1.5, r"sensitivity: 1.5 is outside \[0, 1\]"),
        ("sensitivity", "high", r"sensitivity: expected a number in 0..1, got 'high'"),
        ("min_area", 0, r"min_area: 0 is outside \(0, 1\]"),
        ("min_area", -0.1, r"min_area: -0.1 is outside \(0, 1\]"),
        ("min_area", True, r"min_area: expected a number"),
        ("adapt_s", 0, r"adapt_s: expected a positive number of seconds"),
        ("zones", ([[0, 0], [1, 0], [1, 1]],), r"zones\[0\]: expected a Polygon"),
    ],
)
def test_bad_settings_are_refused_by_name(field: str, value: object, message: str) -> None:
    with pytest.raises(ActivityError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type]
