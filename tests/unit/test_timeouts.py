"""`within` keeps a cancellation that comes with the result (asyncio.wait_for on 3.11 loses it,
and a stage looping on it outlived shutdown)."""

from __future__ import annotations

import asyncio
import contextlib

from edged.timeouts import within


async def test_a_cancellation_that_comes_with_the_event_ends_the_loop() -> None:
    wake = asyncio.Event()
    rounds = 0

    async def stage() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await within(wake.wait(), 30)
            wake.clear()

    task = asyncio.create_task(stage())
    await asyncio.sleep(0)  # the stage waits on the event now
    wake.set()  # a clip arrives ...
    task.cancel()  # ... as shutdown cancels the stage, in the same loop iteration
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done and task.cancelled(), "the stage kept running after its cancel"
    assert rounds == 1


async def test_the_result_or_a_timeout() -> None:
    assert await within(asyncio.sleep(0, result=7), 1) == 7
    try:
        await within(asyncio.Event().wait(), 0.01)
    except TimeoutError:
        return
    raise AssertionError("no TimeoutError")
