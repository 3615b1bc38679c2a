"""The fixtures every test may use: the emulator over HTTP and real clips here, and those of
tests/support/ (the ledger, the webhook receiver, RTSP servers, the MQTT broker, the callback
listener), registered below. Markers: `battery` on the fault battery (tests/battery/), `slow`
on it and on the slow integration modules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from edged.emulator import Emulator, EmulatorOptions, run_emulator
from edged.media.samples import make_clip

pytest_plugins = [
    "tests.support.ledger",
    "tests.support.listener",
    "tests.support.mqtt",
    "tests.support.rtsp",
    "tests.support.webhook",
    "tests.support.edged_process",  # last: it imports tests.support.edged, which needs webhook
]

#: Test modules outside tests/battery/ marked slow as a whole: real RTSP cameras (GStreamer
#: servers recording clips of seconds), kill loops, live quotas and scrapes.
SLOW_MODULES = frozenset(
    {
        "test_rtsp.py",
        "test_rtsp_crash.py",
        "test_rtsp_faults.py",
        "test_metrics_live.py",
        "test_storage.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`battery` on the fault battery, `slow` on it and on SLOW_MODULES: `pytest -m "not
    battery"` leaves out the battery, `pytest -m "not slow"` is the fast part (unit tests and
    the quicker integration tests)."""
    for item in items:
        path = item.path
        if path.parent.name == "battery":
            item.add_marker(pytest.mark.battery)
        if path.parent.name == "battery" or path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with run_emulator(
        EmulatorOptions(callback_delay_s=0.05, callback_retry_delay_s=0.2), seed=1
    ) as emu:
        yield emu


@pytest.fixture
def clip_factory(tmp_path: Path) -> Callable[..., Awaitable[Path]]:
    async def make(
        name: str = "clip.mp4",
        *,
        title: str | None = None,
        seconds: float = 1.0,
        folder: Path | None = None,
    ) -> Path:
        path = (folder or tmp_path / "clips") / name
        return await asyncio.to_thread(make_clip, path, seconds=seconds, title=title)

    return make
