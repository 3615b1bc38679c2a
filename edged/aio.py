"""The asyncio helpers every stage uses: `within`, `woken`, `first_of`, `serving`.

`within` is asyncio.wait_for without its Python 3.11 flaw. On 3.11, wait_for loses a
cancellation that arrives in the same loop iteration as the result of what it waits for
(fixed in 3.12). A stage looping on `wait_for(event.wait(), t)` then went on running after
shutdown had cancelled it, and edged never exited. `asyncio.timeout` keeps the cancellation.

Imports nothing else of edged (the emulator uses `serving` too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """The awaitable's result; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        return await awaitable


async def woken(wake: asyncio.Event, timeout_s: float) -> bool:
    """Wake or time out: wait until `wake` is set or `timeout_s` has passed. True when it
    was set; it is then cleared, so each set wakes one round of a stage's loop."""
    with contextlib.suppress(TimeoutError):
        await within(wake.wait(), timeout_s)
    if not wake.is_set():
        return False
    wake.clear()
    return True


async def first_of(*awaitables: Awaitable[Any]) -> None:
    """Wait until one of them is done, then cancel the others and wait until they are. Tasks
    passed in are the caller's to inspect afterwards (`task.cancelled()`, `task.exception()`)."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


#: Makes the listening site of a runner: `web.TCPSite`, or one with its own connection rules.
SiteFactory = Callable[[web.AppRunner, str, int], web.BaseSite]


@contextlib.asynccontextmanager
async def serving(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout_s: float,
    site: SiteFactory = web.TCPSite,
    **handler_options: Any,
) -> AsyncIterator[web.AppRunner]:
    """Serve `app` on host:port (0: a free one, see `runner.addresses`) for the block; then
    stop listening, give requests in flight `shutdown_timeout_s`, and close."""
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=shutdown_timeout_s, **handler_options
    )
    await runner.setup()
    try:
        await site(runner, host, port).start()
        yield runner
    finally:
        await runner.cleanup()
