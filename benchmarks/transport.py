"""Measure upstream HTTP client transports behind a bare Litestar passthrough, with wrk.

For choosing the client the providers use; not a benchmark of the gateway itself.
Run: `.venv/bin/python -m benchmarks.transport [--duration 5] [--connections 16 64] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, cast

import aiohttp
import httptools
import httpx
import uvloop
from litestar import Litestar, Request, Response, post
from litestar.datastructures import State

HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
# "none" answers without calling the upstream: the ceiling of Litestar + uvicorn alone.
VARIANTS = ("none", "httpx", "httpx-aiohttp", "aiohttp")
POOL_SIZE = 1000
READY_TIMEOUT_S = 20.0
REQUEST_BODY = (
    b'{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
)
UPSTREAM_BODY = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! How can I help you today?"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
)
JSON_HEADERS = {"content-type": "application/json"}
REPO_ROOT = Path(__file__).resolve().parents[1]


# --- upstream: a raw asyncio protocol, so it is never the bottleneck -------------------------


def _http_response(status: bytes, body: bytes, *, close: bool) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status,
        len(body),
    )
    return head + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection answering `POST /v1/chat/completions`, fixed body."""

    OK = _http_response(b"200 OK", UPSTREAM_BODY, close=False)
    OK_CLOSE = _http_response(b"200 OK", UPSTREAM_BODY, close=True)
    NOT_FOUND = _http_response(b"404 Not Found", b'{"error":"not found"}', close=True)

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_message_complete(self) -> None:
        url, self._url = self._url, b""
        if self._transport is None or self._transport.is_closing():
            return
        if self._parser.get_method() != b"POST" or url != PATH.encode():
            self._transport.write(self.NOT_FOUND)
            self._close()
        elif self._parser.should_keep_alive():
            self._transport.write(self.OK)
        else:
            self._transport.write(self.OK_CLOSE)
            self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, HOST, port, backlog=4096)
    async with server:
        await server.serve_forever()


# --- passthrough: bare Litestar forwarding the body with the client under test ---------------


class Forwarder(Protocol):
    async def forward(self, body: bytes) -> bytes: ...

    async def aclose(self) -> None: ...


@dataclass
class HttpxForwarder:
    client: httpx.AsyncClient
    url: str

    async def forward(self, body: bytes) -> bytes:
        response = await self.client.post(self.url, content=body, headers=JSON_HEADERS)
        return response.content

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass
class AiohttpForwarder:
    session: aiohttp.ClientSession
    url: str

    async def forward(self, body: bytes) -> bytes:
        async with self.session.post(self.url, data=body, headers=JSON_HEADERS) as response:
            return await response.read()

    async def aclose(self) -> None:
        await self.session.close()


class NoForwarder:
    async def forward(self, body: bytes) -> bytes:
        return UPSTREAM_BODY

    async def aclose(self) -> None:
        return None


def open_forwarder(variant: str, url: str) -> Forwarder:
    """The client under test; call inside the running loop (aiohttp binds to it)."""
    limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    # trust_env=False everywhere: a proxy variable in the environment must not skew loopback.
    if variant == "httpx":
        return HttpxForwarder(httpx.AsyncClient(limits=limits, trust_env=False), url)
    if variant == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, trust_env=False)
        return HttpxForwarder(httpx.AsyncClient(transport=transport, trust_env=False), url)
    if variant == "aiohttp":
        connector = aiohttp.TCPConnector(limit=POOL_SIZE)
        return AiohttpForwarder(aiohttp.ClientSession(connector=connector), url)
    if variant == "none":
        return NoForwarder()
    raise ValueError(f"unknown variant {variant!r}")


def create_passthrough_app(variant: str, upstream_url: str) -> Litestar:
    @contextlib.asynccontextmanager
    async def forwarder_lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.forwarder = open_forwarder(variant, upstream_url)
        try:
            yield
        finally:
            await app.state.forwarder.aclose()

    @post(PATH, status_code=200)
    async def chat_completions(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        upstream_body = await state.forwarder.forward(await request.body())
        return Response(upstream_body, media_type="application/json")

    # No logging config: Litestar's default puts httpx at INFO, which logs every request.
    return Litestar(
        [chat_completions], lifespan=[forwarder_lifespan], openapi_config=None, logging_config=None
    )


def serve_passthrough(variant: str, port: int, upstream_port: int) -> None:
    import uvicorn

    app = create_passthrough_app(variant, f"http://{HOST}:{upstream_port}{PATH}")
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


# --- load generation and reporting -----------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One wrk run against one target, plus the CPU the target's process spent serving it."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_s: float = 0.0
    busy: bool = False  # started although other work kept the machine busy

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / max(self.requests, 1)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
WRK_SCRIPT = f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{REQUEST_BODY.decode()}'
"""


def _search(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        raise ValueError(f"{pattern!r} not in wrk output:\n{output}")
    return match


def _latency_ms(output: str, percentile: str) -> float:
    match = _search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output)
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> Run:
    """Requests/sec, p50/p99, request and error counts from `wrk --latency` output."""
    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(non_2xx[1])
    if sockets := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in sockets.groups())
    return Run(
        requests_per_s=float(_search(r"^Requests/sec:\s+([\d.]+)", output)[1]),
        p50_ms=_latency_ms(output, "50"),
        p99_ms=_latency_ms(output, "99"),
        requests=int(_search(r"^\s*(\d+) requests in", output)[1]),
        errors=errors,
    )


def run_wrk(port: int, script: Path, *, connections: int, threads: int, seconds: int) -> Run:
    command = [
        *("wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s"),
        *("--timeout", "5s", "--latency", "-s", str(script), f"http://{HOST}:{port}{PATH}"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_idle_fraction(window_s: float = 0.5) -> float:
    """Share of all cores idle over `window_s`, from /proc/stat."""

    def sample() -> tuple[int, int]:
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, total

    idle_before, total_before = sample()
    time.sleep(window_s)
    idle_after, total_after = sample()
    return (idle_after - idle_before) / max(total_after - total_before, 1)


def wait_for_idle(threshold: float, max_wait_s: float) -> bool:
    """Wait (bounded) until other work on the machine quiets down; False if it never did."""
    deadline = time.monotonic() + max_wait_s
    while cpu_idle_fraction() < threshold:
        if time.monotonic() > deadline:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        conn.request("POST", PATH, body=REQUEST_BODY, headers=JSON_HEADERS)
        response = conn.getresponse()
        return response.status == 200 and response.read() == UPSTREAM_BODY
    except OSError:
        return False
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll until `proc` serves the expected body on `port`, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args!r} not serving on port {port} after {timeout}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serving(role_args: Sequence[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """This module in another role, as a child process in its own session (Ctrl-C stays here)."""
    command = [sys.executable, "-m", "benchmarks.transport", *role_args, "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_ready(proc, port)
        yield proc
    finally:
        stop(proc)


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    pid: int


@dataclass(frozen=True)
class Row:
    variant: str
    connections: int
    runs: tuple[Run, ...]

    @property
    def median(self) -> Run:
        """The run with the median req/s (the upper one for an even count)."""
        return sorted(self.runs, key=lambda run: run.requests_per_s)[len(self.runs) // 2]

    @property
    def median_cpu_us(self) -> float:
        costs = sorted(run.cpu_us_per_request for run in self.runs)
        return costs[len(costs) // 2]


def measure_once(target: Target, script: Path, connections: int, args: argparse.Namespace) -> Run:
    busy = args.idle_wait > 0 and not wait_for_idle(args.idle_threshold, args.idle_wait)
    cpu_before = process_cpu_s(target.pid)
    run = run_wrk(
        target.port, script, connections=connections, threads=args.threads, seconds=args.duration
    )
    return replace(run, cpu_s=process_cpu_s(target.pid) - cpu_before, busy=busy)


def measure(targets: Sequence[Target], script: Path, args: argparse.Namespace) -> list[Row]:
    """Every target at every concurrency, `--repeat` rounds interleaved so drift hits all alike."""
    for target in targets:
        if args.warmup > 0:
            run_wrk(
                target.port,
                script,
                connections=max(args.connections),
                threads=1,
                seconds=args.warmup,
            )
    runs: dict[tuple[str, int], list[Run]] = {}
    for round_ in range(1, args.repeat + 1):
        for connections in args.connections:
            for target in targets:
                run = measure_once(target, script, connections, args)
                runs.setdefault((target.name, connections), []).append(run)
                print(
                    f"  round {round_} {target.name:<18} c={connections:<4} "
                    f"{run.requests_per_s:>9.0f} req/s {run.cpu_us_per_request:>7.0f} CPU us/req"
                    f"{' (machine was busy)' if run.busy else ''}",
                    flush=True,
                )
    return [Row(name, c, tuple(results)) for (name, c), results in runs.items()]


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| variant | concurrency | req/s | p50 ms | p99 ms | server CPU µs/req | errors "
        "| req/s, each run |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in sorted(rows, key=lambda r: r.connections):
        r = row.median
        each = " / ".join(f"{run.requests_per_s:,.0f}{'*' if run.busy else ''}" for run in row.runs)
        errors = sum(run.errors for run in row.runs)
        lines.append(
            f"| {row.variant} | {row.connections} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {row.median_cpu_us:,.0f} | {errors} | {each} |"
        )
    return "\n".join(lines)


def machine_summary() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    packages = ("httpx", "httpx-aiohttp", "aiohttp", "litestar", "uvicorn", "uvloop", "httptools")
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in packages)
    return (
        f"nproc {len(os.sched_getaffinity(0))}; CPU {cpu}; Python {platform.python_version()}; "
        f"{versions}"
    )


def load_average() -> str:
    return "load average " + " ".join(f"{load:.2f}" for load in os.getloadavg())


def run_benchmark(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    print(machine_summary(), flush=True)
    print(f"before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        upstream_port = free_port()
        upstream = servers.enter_context(serving(["--role", "upstream"], upstream_port))
        targets = [Target("upstream (direct)", upstream_port, upstream.pid)]
        # Idle passthroughs cost nothing; keeping them all up lets rounds interleave.
        for variant in args.variants:
            port = free_port()
            role = ["--role", "passthrough", "--variant", variant]
            proc = servers.enter_context(
                serving([*role, "--upstream-port", str(upstream_port)], port)
            )
            targets.append(Target(variant, port, proc.pid))
        rows = measure(targets, script, args)
    print(f"after: {load_average()}")
    print()
    print(markdown_table(rows))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transport", description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, nargs="+", default=[16], help="wrk -c values")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table shows the median")
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=30.0,
        help="max seconds to wait for an idle machine before each run (0: don't wait)",
    )
    parser.add_argument(
        "--idle-threshold",
        type=float,
        default=0.85,
        help="share of CPU idle that counts as idle (our servers idle between runs)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per server")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    hidden = argparse.SUPPRESS
    parser.add_argument(
        "--role", choices=("bench", "upstream", "passthrough"), default="bench", help=hidden
    )
    parser.add_argument("--variant", choices=VARIANTS, help=hidden)
    parser.add_argument("--port", type=int, help=hidden)
    parser.add_argument("--upstream-port", type=int, help=hidden)
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.role == "upstream":
        uvloop.run(serve_upstream(args.port))
    elif args.role == "passthrough":
        serve_passthrough(args.variant, args.port, args.upstream_port)
    else:
        # SIGTERM unwinds like Ctrl-C, so the `serving` blocks stop their children.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            run_benchmark(args)
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
