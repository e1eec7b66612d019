"""Serving an app inside the current event loop (demo, tests): start, wait until up, stop.

Not for production serving; `gateway serve` runs uvicorn workers for that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from litestar import Litestar

from gateway.server_protocol import protocol_with
from gateway.settings import ServerSettings

START_DEADLINE_S = 15.0
STOP_DEADLINE_S = 15.0


@asynccontextmanager
async def serve_in_loop(
    app: Litestar, host: str, port: int, server_settings: ServerSettings | None = None
) -> AsyncIterator[str]:
    """Yields the base URL once the server accepts connections."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        http=protocol_with(server_settings or ServerSettings()),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + START_DEADLINE_S
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError("server exited during startup")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"server on {host}:{port} did not start in time")
        await asyncio.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=STOP_DEADLINE_S)
