"""Waiting for a condition with a deadline (never sleeping to synchronise): `eventually`, and
`until`, which fails at once when the daemon it waits on stops.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `check` until true; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    daemon: asyncio.Future[Any] | None,
    *,
    what: str,
    timeout_s: float = 20.0,
) -> None:
    """`eventually`, failing at once if the daemon stops meanwhile."""

    async def probe() -> bool:
        if daemon is not None and daemon.done():
            pytest.fail(f"edged stopped while waiting for {what}: {daemon.result()!r}")
        result = check()
        return bool(await result if inspect.isawaitable(result) else result)

    await eventually(probe, timeout_s=timeout_s, what=what)
