"""Measure upstream HTTP client transports behind a bare Litestar passthrough, with wrk.

For choosing the client the providers use; not a benchmark of the gateway itself.
Run: `.venv/bin/python -m benchmarks.transport [--duration 5] [--connections 16 64] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx
import uvloop
from litestar import Litestar, Request, Response, post
from litestar.datastructures import State

from benchmarks.harness.machine import load_average, machine_summary
from benchmarks.harness.processes import HOST, answers, free_port, serving
from benchmarks.harness.rounds import Idle, Row, Target, measure_rounds
from benchmarks.harness.upstream import PATH, REQUEST_BODY, UPSTREAM_BODY, serve_upstream
from benchmarks.harness.wrk import lua_script, run_wrk
from providers.http1 import HttpClient

# "none" answers without calling the upstream: the ceiling of Litestar + uvicorn alone.
VARIANTS = ("none", "httpx", "httpx-aiohttp", "aiohttp", "http1")
POOL_SIZE = 1000
JSON_HEADERS = {"content-type": "application/json"}
REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("httpx", "httpx-aiohttp", "aiohttp", "litestar", "uvicorn", "uvloop", "httptools")


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


@dataclass
class Http1Forwarder:
    """The gateway's own client (`providers.http1`), as the adapters use it."""

    client: HttpClient
    url: str

    async def forward(self, body: bytes) -> bytes:
        async with await self.client.request("POST", self.url, JSON_HEADERS, body) as response:
            return await response.read()

    async def aclose(self) -> None:
        await self.client.aclose()


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
    if variant == "http1":
        return Http1Forwarder(HttpClient(max_connections=POOL_SIZE), url)
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


def _serves_fixed_body(port: int) -> bool:
    return answers(
        port,
        PATH,
        REQUEST_BODY,
        JSON_HEADERS,
        lambda status, body: status == 200 and body == UPSTREAM_BODY,
    )


@contextlib.contextmanager
def serving_role(role_args: Sequence[str], port: int) -> Iterator[int]:
    """This module in another role, as a child process; yields its pid once it serves."""
    command = [sys.executable, "-m", "benchmarks.transport", *role_args, "--port", str(port)]
    with serving(command, lambda: _serves_fixed_body(port), cwd=REPO_ROOT) as proc:
        yield proc.pid


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| variant | concurrency | req/s | p50 ms | p99 ms | server CPU µs/req | errors "
        "| req/s, each run |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in sorted(rows, key=lambda r: r.connections):
        r = row.median
        lines.append(
            f"| {row.name} | {row.connections} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {row.median_cpu_us:,.0f} | {row.errors} | {row.each()} |"
        )
    return "\n".join(lines)


def _target(name: str, port: int, pid: int, script: Path) -> Target:
    return Target(name, f"http://{HOST}:{port}{PATH}", lambda: [pid], script)


def run_benchmark(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    print(machine_summary(PACKAGES), flush=True)
    print(f"before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        script = Path(tmp) / "post.lua"
        script.write_text(lua_script(REQUEST_BODY))
        upstream_port = free_port()
        upstream = servers.enter_context(serving_role(["--role", "upstream"], upstream_port))
        targets = [_target("upstream (direct)", upstream_port, upstream, script)]
        # Idle passthroughs cost nothing; keeping them all up lets rounds interleave.
        for variant in args.variants:
            port = free_port()
            role = ["--role", "passthrough", "--variant", variant]
            pid = servers.enter_context(
                serving_role([*role, "--upstream-port", str(upstream_port)], port)
            )
            targets.append(_target(variant, port, pid, script))
        for target in targets:
            if args.warmup > 0:
                run_wrk(
                    target.url,
                    script,
                    connections=max(args.connections),
                    threads=1,
                    seconds=args.warmup,
                )
        rows = measure_rounds(
            targets,
            args.connections,
            repeat=args.repeat,
            seconds=args.duration,
            idle=Idle(args.idle_wait, args.idle_threshold),
            threads=args.threads,
        )
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
