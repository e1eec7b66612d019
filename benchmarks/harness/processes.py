"""Servers under test as child processes: start, wait until they answer, always stop them.

Each child runs in its own session so Ctrl-C reaches only the benchmark, which stops it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
JSON = {"Content-Type": "application/json"}  # the gateway answers 415 to chat without it
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0  # the gateway drains its ledger writer on the way out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def answers(
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    expect: Callable[[int, bytes], bool],
) -> bool:
    """One JSON POST on a fresh connection; whether `expect(status, body)` holds."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        conn.request("POST", path, body=body, headers={**JSON, **headers})
        response = conn.getresponse()
        return expect(response.status, response.read())
    except OSError:
        return False
    finally:
        conn.close()


def wait_ready(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = READY_TIMEOUT_S
) -> None:
    """Poll until `ready()` holds, or fail at the deadline or when `proc` exits."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args!r} not ready after {timeout}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL to the child's own process group if it does not exit in time.

    Whatever is left in that group once the child has exited (a worker it did not reap) is
    killed too: nothing it started outlives the benchmark.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
    _kill_group(proc.pid)


def _kill_group(pgid: int) -> None:
    """SIGKILL the process group the harness created for a child (the child's pid is its id)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def serving(
    command: Sequence[str],
    ready: Callable[[], bool],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` as a child process in its own session, yielded once `ready()` holds."""
    output = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=output,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
        )
        try:
            wait_ready(proc, ready, ready_timeout)
            yield proc
        finally:
            stop(proc)
    finally:
        if log is not None and not isinstance(output, int):
            output.close()
