"""Build (once, cached) and run a real llama.cpp `llama-server` on loopback for tests.

Not a production launcher: the gateway only ever talks HTTP to a llama.cpp server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_llama_server.sh"
BUILD_TIMEOUT_S = 1500.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05
LOG_TAIL_CHARS = 4000


class LlamaServerError(RuntimeError):
    """The llama-server binary could not be built, or the server did not come up."""


@dataclass(frozen=True)
class LlamaServer:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return _tail(self.log_path, chars)


def ensure_llama_server() -> Path:
    """Return the cached llama-server binary, building it first if it is missing.

    `LLAMA_SERVER` (as exported by scripts/test.sh) names an existing binary and skips the
    build script. The script itself is the cache check: it exits at once, printing the path,
    when the binary exists.
    """
    override = os.environ.get("LLAMA_SERVER")
    if override:
        return Path(override)
    try:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LlamaServerError(f"{BUILD_SCRIPT} did not finish in {BUILD_TIMEOUT_S:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise LlamaServerError(
            f"{BUILD_SCRIPT} failed with exit code {done.returncode}\n"
            f"--- stdout ---\n{done.stdout[-LOG_TAIL_CHARS:]}\n"
            f"--- stderr ---\n{done.stderr[-LOG_TAIL_CHARS:]}"
        )
    binary = Path(lines[-1])
    if not os.access(binary, os.X_OK):
        raise LlamaServerError(f"{BUILD_SCRIPT} printed {binary}, which is not an executable")
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def run_llama_server(
    model_path: Path,
    port: int | None = None,
    *,
    slots: int = 2,
    ctx: int = 2048,
    extra_args: Sequence[str] = (),
) -> Iterator[LlamaServer]:
    """Start llama-server on 127.0.0.1 serving `model_path`; yield once `/health` answers 200.

    `ctx` is the whole KV cache: each of the `slots` gets `ctx // slots` tokens.
    The server's output goes to a log file, quoted in errors.
    """
    binary = ensure_llama_server()
    port = port if port is not None else free_port()
    args = [
        str(binary),
        "--model", str(model_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--jinja",
        "--parallel", str(slots),
        "--ctx-size", str(ctx),
        "--metrics",
        "--slots",
        "--no-webui",
        "--no-warmup",
        *extra_args,
    ]  # fmt: skip
    # LLAMA_ARG_* variables would silently override the flags above.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    log_fd, log_name = tempfile.mkstemp(prefix=f"llama-server-{port}-", suffix=".log")
    log_path = Path(log_name)
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT, env=env
        )
    finally:
        os.close(log_fd)
    server = LlamaServer(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        _wait_healthy(server, START_TIMEOUT_S)
        yield server
    finally:
        _stop(process)
        log_path.unlink(missing_ok=True)


def _wait_healthy(server: LlamaServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(f"{server.base_url}/health")
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            # Waiting on the process doubles as the poll interval and notices an early exit.
            try:
                code = server.process.wait(timeout=POLL_INTERVAL_S)
            except subprocess.TimeoutExpired:
                continue
            raise LlamaServerError(
                f"llama-server exited with code {code} before it was healthy\n{server.log_tail()}"
            )
    raise LlamaServerError(
        f"llama-server not healthy after {timeout_s:.0f} s (last: {last})\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, chars: int) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(log unavailable: {exc})"
