"""Waiting for a condition in tests: poll with a deadline, never sleep as synchronization."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 10.0,
    *,
    what: str = "condition",
    interval_s: float = 0.01,
) -> float:
    """Poll `check` (sync or async) until it holds; returns the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(interval_s)
