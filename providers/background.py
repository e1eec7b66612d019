"""Stopping a background task for sure: cancel, and cancel again if the cancel was swallowed.

On Python 3.11 `asyncio.wait_for` (used inside redis-py) can drop a cancel that lands as its
inner call completes, so a loop stopped by one `cancel()` may go on forever and a plain
`await task` never returns. It lives in the lowest layer because every layer runs such loops.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("gateway.background")

RECANCEL_S = 0.1
STOP_TIMEOUT_S = 10.0


async def stop_task(task: asyncio.Task[Any] | None, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Cancel `task` and wait until it has ended, re-cancelling while it keeps running."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("background task %s did not stop within %.1fs", task.get_name(), timeout_s)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_S, remaining))
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
