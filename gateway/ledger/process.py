"""`gateway ledger-writer`: the ledger writer as a process of its own, so the serving workers'
cores don't pay for it (they run with `GATEWAY_LEDGER_WRITER=external`). Needs Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager

from gateway.ledger.lifecycle import open_ledger
from gateway.redis_options import background_redis
from gateway.redis_topology import Topology
from gateway.resources import make_engine
from gateway.settings import Settings
from providers.background import stop_task

log = logging.getLogger("gateway.ledger.process")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
COMMAND = [sys.executable, "-m", "gateway.cli", "ledger-writer", "--exit-with-parent"]
PARENT_CHECK_S = 1.0  # how often a writer started by `gateway serve` checks it still has one
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # between restarts of a writer that keeps dying
STEADY_S = 60.0  # a writer that ran this long before dying is restarted without delay growth


async def run_writer(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    exit_with_parent: bool = False,
    parent_pid: int | None = None,
) -> int:
    """Write the Redis stream to the database until SIGTERM or SIGINT (or `stop`), then drain;
    the exit status: 0, or 1 when the writer died (its supervisor then starts a new process).

    With `exit_with_parent`, it also stops (draining at most the drain timeout, reachable
    database or not) once the process that started it is gone, so a `gateway serve` killed with
    SIGKILL leaves no writer behind. `parent_pid` names that process (as `serve` does): without
    it, the parent is whoever it is when this starts, which misses a server killed before then.
    """
    redis_url = settings.redis.redis_url
    if not redis_url:
        raise ValueError("the ledger writer process reads the Redis stream: set REDIS_URL")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if exit_with_parent or parent_pid is not None:
        watch: asyncio.Task[None] | None = asyncio.create_task(
            _watch_parent(stop, parent_pid or os.getppid())
        )
    else:
        watch = None
    try:
        async with AsyncExitStack() as stack:
            engine = make_engine(settings)
            stack.push_async_callback(engine.dispose)
            redis = background_redis(redis_url)
            stack.push_async_callback(redis.aclose)
            resp = Topology.from_url(redis_url).commands()  # the stream's emit side: unused here
            stack.push_async_callback(resp.aclose)
            ledger = await stack.enter_async_context(
                open_ledger(settings, engine, redis, resp, writer_here=True)
            )
            log.info("ledger writer process started", extra={"source": ledger.source.kind})
            stopped = asyncio.create_task(stop.wait())
            ended = asyncio.create_task(ledger.writer.ended())
            await asyncio.wait({stopped, ended}, return_when=asyncio.FIRST_COMPLETED)
            await stop_task(stopped)
            await stop_task(ended)
            if not stop.is_set():
                log.error("the ledger writer died: exiting so that it is started again")
                return 1
            log.info("ledger writer process stopping: draining")
        return 0
    finally:
        await stop_task(watch)
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _watch_parent(stop: asyncio.Event, parent: int) -> None:
    # A child whose parent died is re-parented (to init or a subreaper): its ppid changes.
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the gateway that started this ledger writer is gone: stopping")
            stop.set()
            return
        await asyncio.sleep(PARENT_CHECK_S)


@contextmanager
def writer_process(stop_timeout_s: float) -> Iterator[None]:
    """`gateway ledger-writer` as a child of `gateway serve` while the server runs, restarted
    (with growing pauses) if it dies. uvicorn re-raises the SIGTERM it handled on its way out:
    it is held until the writer has drained."""
    caught: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, _frame: caught.append(sig))
    supervisor = _Supervisor()
    supervisor.start()
    try:
        yield
    finally:
        supervisor.stop(stop_timeout_s)
        signal.signal(signal.SIGTERM, previous)
        for sig in caught:
            signal.raise_signal(sig)


class _Supervisor:
    """Keeps one writer process running from a thread: the server owns the main thread."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:  # never a new writer once stop() has looked
            if self._stopping.is_set():
                return None
            # Its own session: a Ctrl-C or a signal to the server's process group reaches the
            # server, which then stops the writer after the workers (`stop`), not before.
            command = [*COMMAND, "--parent-pid", str(os.getpid())]
            self._process = subprocess.Popen(command, start_new_session=True)
            return self._process

    def _run(self) -> None:
        process, failures = self._process, 0
        while process is not None:
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - started > STEADY_S else failures + 1
            pause = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S)) - 1] if failures else 0
            log.error(
                "ledger writer process exited; restarting it",
                extra={"exit_code": code, "restart_in_s": pause},
            )
            if self._stopping.wait(pause):
                return
            process = self._spawn()

    def stop(self, timeout_s: float) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            _stop(process, timeout_s)
        self._thread.join(timeout=1.0)


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
