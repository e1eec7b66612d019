"""`gateway ledger-writer`: the ledger writer as a process of its own, so the serving workers'
cores don't pay for it (they run with `GATEWAY_LEDGER_WRITER=external`). Needs Redis.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager

from redis.asyncio import Redis

from gateway.ledger.lifecycle import open_ledger
from gateway.resources import make_engine
from gateway.resp import RespClient
from gateway.settings import Settings

log = logging.getLogger("gateway.ledger.process")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
COMMAND = [sys.executable, "-m", "gateway.cli", "ledger-writer"]


async def run_writer(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Write the Redis stream to the database until SIGTERM or SIGINT (or `stop`), then drain."""
    redis_url = settings.redis.redis_url
    if not redis_url:
        raise ValueError("the ledger writer process reads the Redis stream: set REDIS_URL")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with AsyncExitStack() as stack:
            engine = make_engine(settings)
            stack.push_async_callback(engine.dispose)
            redis = Redis.from_url(redis_url)
            stack.push_async_callback(redis.aclose)
            resp = RespClient.from_url(redis_url)  # the stream's emit side: unused here
            stack.push_async_callback(resp.aclose)
            ledger = await stack.enter_async_context(
                open_ledger(settings, engine, redis, resp, writer_here=True)
            )
            log.info("ledger writer process started", extra={"source": ledger.source.kind})
            await stop.wait()
            log.info("ledger writer process stopping: draining")
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


@contextmanager
def writer_process(stop_timeout_s: float) -> Iterator[None]:
    """`gateway ledger-writer` as a child of `gateway serve` while the server runs. uvicorn
    re-raises the SIGTERM it handled on its way out: it is held until the writer has drained."""
    caught: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, _frame: caught.append(sig))
    process = subprocess.Popen(COMMAND)
    try:
        yield
    finally:
        _stop(process, stop_timeout_s)
        signal.signal(signal.SIGTERM, previous)
        for sig in caught:
            signal.raise_signal(sig)


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM (the writer drains first), then SIGKILL past `timeout_s`: what it has not acked
    stays in the stream for the next writer."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("ledger writer process did not stop in time; killing it")
        process.kill()
        process.wait()
