"""`within` keeps a cancellation that comes with the result (asyncio.wait_for on 3.11 loses it,
and a stage looping on it outlived shutdown)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from aiohttp import web

from edged.aio import first_of, serving, within, woken


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


async def test_woken_says_whether_it_was_rung_and_clears_the_ring() -> None:
    wake = asyncio.Event()
    assert not await woken(wake, 0.01)
    wake.set()
    assert await woken(wake, 5)
    assert not wake.is_set()


async def test_first_of_returns_with_the_first_and_cancels_the_rest() -> None:
    first, never = asyncio.Event(), asyncio.Event()
    slow = asyncio.ensure_future(never.wait())
    first.set()
    await asyncio.wait_for(first_of(first.wait(), slow), 5)
    assert slow.cancelled()


async def test_serving_answers_on_a_free_port_until_the_block_ends() -> None:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    async with serving(app, "127.0.0.1", 0, shutdown_timeout_s=1.0) as runner:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            assert await answer.text() == "hello"
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(url)
