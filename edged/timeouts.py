"""`within`: asyncio.wait_for without its Python 3.11 flaw.

On 3.11, wait_for loses a cancellation that arrives in the same loop iteration as the result
of what it waits for (fixed in 3.12). A stage looping on `wait_for(event.wait(), t)` then
went on running after shutdown had cancelled it, and edged never exited. `asyncio.timeout`
keeps the cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """The awaitable's result; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        return await awaitable
