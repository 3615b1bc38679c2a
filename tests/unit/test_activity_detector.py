"""The detector on rendered frames: distractors alone give no activity, figures give it when
they are there, zones and masks decide where it counts. Frames are fed 1 s or 2 s apart, as
keyframes arrive from a camera."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edged.activity import ActivityError, Detector, Polygon, Sample, Settings, per_second
from tests.support.activity_scene import Box, Scene, Walker

FLICKER = Box(0.62, 0.12, 0.74, 0.3)
#: Digits 2 px thick at 320x180, as a 1080p camera's clock is once scaled down.
CLOCK = Box(0.5, 0.88, 0.98, 0.99)
#: Darker, and noisier (sensor gain is up): 4 levels of noise at 320x180.
NIGHT = Scene(seconds=40, gain=((0.0, 0.3),), noise=((0.0, 4.0),))


def samples(scene: Scene, settings: Settings | None = None, step_s: float = 1.0) -> list[Sample]:
    detector = Detector(settings)
    count = int(scene.seconds / step_s)
    return [detector.feed(scene.render(i * step_s), i * step_s) for i in range(count)]


def active_times(found: list[Sample]) -> list[float]:
    return [sample.t_s for sample in found if sample.active]


DISTRACTORS = {
    "sensor noise": Scene(seconds=40, noise=((0.0, 8.0),)),
    "brightness ramp down and up": Scene(seconds=40, gain=((5, 1.0), (20, 0.4), (35, 1.0))),
    "dusk to night with noise": Scene(
        seconds=40, gain=((5, 1.0), (30, 0.3)), noise=((5, 2), (30, 4))
    ),
    "sudden exposure step": Scene(seconds=40, gain=((0, 1.0), (19.9, 1.0), (20, 1.3))),
    "burnt-in clock": Scene(seconds=40, clock=CLOCK),
    # The clock keeps its brightness while the yard darkens: it must not look changed.
    "burnt-in clock at dusk": Scene(
        seconds=60, clock=CLOCK, gain=((5, 1.0), (50, 0.3)), noise=((5, 2.0), (50, 4.0))
    ),
}


@pytest.mark.parametrize("step_s", [1.0, 2.0])
@pytest.mark.parametrize("name", DISTRACTORS)
def test_a_distractor_alone_is_no_activity(name: str, step_s: float) -> None:
    found = samples(DISTRACTORS[name], step_s=step_s)
    assert active_times(found) == [], name


@pytest.mark.parametrize("step_s", [1.0, 2.0])
def test_a_masked_flicker_is_no_activity_and_the_same_unmasked_is(step_s: float) -> None:
    scene = Scene(seconds=30, flicker=FLICKER, flicker_period_s=0.7)
    masked = Settings(masks=(Polygon.parse(FLICKER.polygon()),))
    assert active_times(samples(scene, masked, step_s)) == []
    assert len(active_times(samples(scene, None, step_s))) >= 5


def test_a_spot_changing_for_minutes_stops_counting() -> None:
    # An unmasked screen: activity at first, then busy, not activity, for as long as it flickers.
    scene = Scene(seconds=180, flicker=FLICKER, flicker_period_s=0.7)
    times = active_times(samples(scene, step_s=1.0))
    assert any(t < 30 for t in times)
    assert not any(t > 120 for t in times), times


WALKERS = {
    "fast, 3 s across": (Scene(seconds=30), Walker(12, 3)),
    "slow, 40 s across": (Scene(seconds=60), Walker(10, 40)),
    "at night with noise": (NIGHT, Walker(15, 12, level=200)),
    "among all distractors": (
        Scene(
            seconds=40,
            clock=CLOCK,
            noise=((0, 4.0),),
            gain=((0, 1.0), (40, 0.6)),
        ),
        Walker(20, 6),
    ),
}


@pytest.mark.parametrize("step_s", [1.0, 2.0])
@pytest.mark.parametrize("name", WALKERS)
def test_a_figure_is_activity_while_it_is_in_the_frame(name: str, step_s: float) -> None:
    base, walker = WALKERS[name]
    scene = dataclasses.replace(base, walkers=(walker,))
    times = active_times(samples(scene, step_s=step_s))
    assert times, name
    assert all(walker.start_s <= t <= walker.end_s for t in times), times
    # Through the middle of its walk it is seen in (nearly) every sample.
    middle = [
        t
        for t in np.arange(0, scene.seconds, step_s)
        if walker.start_s + 0.2 * walker.duration_s <= t <= walker.end_s - 0.2 * walker.duration_s
    ]
    assert sum(t in times for t in middle) >= max(1, int(0.8 * len(middle))), (middle, times)


LOWER_HALF = Polygon.parse([[0, 0.6], [1, 0.6], [1, 1], [0, 1]])


@pytest.mark.parametrize("step_s", [1.0, 2.0])
def test_a_far_figure_a_tenth_of_the_frame_high_is_activity_at_the_defaults(step_s: float) -> None:
    scene = Scene(seconds=20, noise=((0, 2.0),), walkers=(Walker(5, 8, top=0.6, height=0.1),))
    times = active_times(samples(scene, step_s=step_s))
    assert len(times) >= 6 / step_s and all(5 <= t <= 13 for t in times), times


def test_a_figure_partly_inside_a_zone_is_activity() -> None:
    # From 0.45 to 0.75 of the height: its legs walk in the zone, its head does not.
    scene = Scene(seconds=20, walkers=(Walker(5, 8, top=0.45),))
    times = active_times(samples(scene, Settings(zones=(LOWER_HALF,))))
    assert times and all(5 <= t <= 13 for t in times)


def test_a_figure_outside_every_zone_is_no_activity() -> None:
    scene = Scene(seconds=20, walkers=(Walker(5, 8, top=0.1),))
    assert active_times(samples(scene, Settings(zones=(LOWER_HALF,)))) == []
    assert active_times(samples(scene))  # the same walk without the zone is seen


def test_a_figure_inside_a_mask_is_no_activity() -> None:
    scene = Scene(seconds=20, walkers=(Walker(5, 8, top=0.1),))
    upper = Polygon.parse([[0, 0], [1, 0], [1, 0.5], [0, 0.5]])
    assert active_times(samples(scene, Settings(masks=(upper,)))) == []


def test_min_area_is_a_fraction_of_the_zone() -> None:
    scene = Scene(seconds=20, walkers=(Walker(5, 8),))
    peak = max(sample.area for sample in samples(scene))
    assert 0.005 < peak < 0.05  # a figure of 0.3 x 0.1 of the frame, changed pixels only
    assert active_times(samples(scene, Settings(min_area=peak * 0.9)))
    assert active_times(samples(scene, Settings(min_area=peak * 1.5))) == []
    # The same figure in a zone of a quarter of the frame is four times its share.
    quarter = Polygon.parse([[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]])
    in_zone = max(s.area for s in samples(scene, Settings(zones=(quarter,))))
    assert in_zone > peak * 1.5


def test_sensitivity_decides_about_a_faint_figure() -> None:
    # A figure a few levels off the textured ground, in noise: seen whole when sensitive,
    # in pieces (or not at all) when not.
    scene = Scene(seconds=20, noise=((0, 3.0),), walkers=(Walker(5, 8, level=118),))
    keen = samples(scene, Settings(sensitivity=1.0))
    dull = samples(scene, Settings(sensitivity=0.0))
    assert len(active_times(keen)) > len(active_times(dull)) + 2
    assert max(s.area for s in keen) > 2 * max(s.area for s in dull)


def test_a_new_frame_size_starts_over_and_a_colour_frame_is_refused() -> None:
    detector = Detector()
    assert not detector.feed(Scene(width=64, height=36).render(0), 0.0).active
    assert not detector.feed(Scene(width=32, height=18).render(1), 1.0).active
    with pytest.raises(ActivityError, match="2-D grayscale"):
        detector.feed(np.zeros((18, 32, 3), dtype=np.uint8), 2.0)


def test_samples_spread_over_the_seconds_they_stand_for() -> None:
    found = [Sample(0.0, 0, 0, False), Sample(2.0, 5.0, 0.01, True), Sample(4.0, 0, 0, False)]
    seconds = per_second(found, 6.0)
    assert [s.index for s in seconds if s.active] == [2, 3]
    assert seconds[3].score == 5.0 and seconds[3].area == 0.01
    assert len(seconds) == 6
    assert per_second([Sample(0.5, 1.0, 0.1, True)], 1.2)[1].active
