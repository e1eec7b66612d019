"""`python -m benchmarks.overhead`: start everything, measure every figure, write the tables.

Starts the fast upstream, a fresh database and Redis prefix, and the gateway as `gateway serve`
(1 worker, and N workers for the scaling figure); every process stops and every bit of state is
removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from benchmarks.harness.machine import load_average, machine_summary, pids_named
from benchmarks.harness.processes import answers, free_port, serving
from benchmarks.harness.rounds import Idle, Target, measure_rounds
from benchmarks.harness.stack import (
    CHAT_BODY,
    CHAT_PATH,
    REPO_ROOT,
    Gateway,
    Stack,
    fresh_backing,
    prepare_stack,
    running_gateway,
)
from benchmarks.harness.wrk import lua_script, run_wrk
from benchmarks.micro import io_micros, pure_micros
from benchmarks.overhead.ledger import measure_ledger
from benchmarks.overhead.report import DIRECT, Results, markdown
from benchmarks.overhead.streaming import Endpoint, measure_memory, measure_streaming

PACKAGES = (
    "litestar", "uvicorn", "granian", "uvloop", "httptools", "aiohttp", "msgspec", "redis",
    "hiredis", "sqlalchemy", "asyncpg",
)  # fmt: skip
BACKING = ("redis-server", "postgres")
QUICK = {
    "duration": 1.0,
    "repeat": 1,
    "warmup": 1.0,
    "streams": 100,
    "stream_requests": 50,
    "ledger_seconds": 2.0,
    "micro_rounds": 200,
    "micro_repeats": 3,
    "idle_wait": 5.0,
}
FULL = {
    "duration": 5.0,
    "repeat": 3,
    "warmup": 2.0,
    "streams": 1000,
    "stream_requests": 500,
    "ledger_seconds": 20.0,
    "micro_rounds": 2000,
    "micro_repeats": 7,
    "idle_wait": 30.0,
}


FREE_KEY_TARGET = "gateway, 1 worker, key without limits"
SPEND_KEY_TARGET = "gateway, 1 worker, key with a spend limit only (leased)"


def say(text: str) -> None:
    print(text, flush=True)


def _upstream_ready(port: int) -> bool:
    return answers(port, CHAT_PATH, CHAT_BODY, {}, lambda status, _: status == 200)


def _target(name: str, url: str, pids: Gateway | int, script: Path) -> Target:
    if isinstance(pids, Gateway):
        gateway = pids
        return Target(name, url, gateway.pids, script, lambda: pids_named(BACKING))
    pid = pids
    return Target(name, url, lambda: [pid], script)


def run(args: argparse.Namespace, command: str) -> Results:
    header = [
        f"Command: `{command}`",
        "",
        f"Machine: {machine_summary(PACKAGES)}; wrk -t1.",
        f"Started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {load_average()} before the run.",
    ]
    say("\n".join(header))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack_:
        workdir = Path(tmp)
        up_port = free_port()
        upstream_cmd = [sys.executable, "-m", "benchmarks.harness.upstream", "--port", str(up_port)]
        upstream = stack_.enter_context(
            serving(upstream_cmd, lambda: _upstream_ready(up_port), cwd=REPO_ROOT)
        )
        say(f"upstream on :{up_port}; preparing a fresh database and Redis prefix")
        backing = stack_.enter_context(fresh_backing(args.postgres, args.redis))
        stack = prepare_stack(backing, up_port, workdir)
        logs = args.output.with_suffix("")  # gateway logs kept next to the results
        logs.mkdir(parents=True, exist_ok=True)
        gateways = _start_gateways(args, stack, logs, stack_)
        one, scaled, others = gateways[0], gateways[1] if args.workers > 1 else None, gateways[2:]
        if scaled is None:
            others = gateways[1:]
        direct_script, gateway_script = workdir / "direct.lua", workdir / "gateway.lua"
        free_script = workdir / "free.lua"
        direct_script.write_text(lua_script(CHAT_BODY))
        gateway_script.write_text(lua_script(CHAT_BODY, stack.auth_headers))
        free_script.write_text(lua_script(CHAT_BODY, stack.free_auth_headers))
        spend_script = workdir / "spend.lua"
        spend_script.write_text(lua_script(CHAT_BODY, stack.spend_auth_headers))
        direct_url = f"http://127.0.0.1:{up_port}{CHAT_PATH}"
        targets = [_target(DIRECT, direct_url, upstream.pid, direct_script)]
        targets += [_target(g.name, g.url, g, gateway_script) for g in gateways]
        # The same one-worker gateway, called with a key that has no limits: what the limit
        # check (one Redis round trip, and the settle script at the end) adds.
        targets.append(_target(FREE_KEY_TARGET, one.url, one, free_script))
        # ...and with a key that has only a spend limit: admitted from the worker's lease.
        targets.append(_target(SPEND_KEY_TARGET, one.url, one, spend_script))
        results = Results(
            header,
            [],
            one.name,
            scaled.name if scaled else None,
            [g.name for g in others],
            free_key=FREE_KEY_TARGET,
            spend_key=SPEND_KEY_TARGET,
        )

        if not args.skip_micro:
            say("micro-benchmarks")
            results.micros = pure_micros(args.micro_rounds, args.micro_repeats)
            results.micros += uvloop.run(
                io_micros(
                    direct_url,
                    args.redis,
                    backing.database_url,
                    args.micro_rounds // 4,
                    args.micro_repeats,
                )
            )
        say("warm-up")
        for target in targets:
            run_wrk(target.url, target.script, connections=64, threads=1, seconds=args.warmup)
        say("non-streaming rounds")
        idle = Idle(args.idle_wait, args.idle_threshold)
        results.rows = measure_rounds(
            targets,
            args.connections,
            repeat=args.repeat,
            seconds=args.duration,
            idle=idle,
            report=say,
        )
        direct = Endpoint(DIRECT, up_port, {}, lambda: [upstream.pid])
        via = Endpoint(one.name, one.port, stack.auth_headers, one.pids)
        if not args.skip_streaming:
            say("streaming: TTFT, per-chunk cost, pacing")
            results.streaming = measure_streaming(direct, via, args.stream_requests)
            say(f"memory: {args.streams} open streams")
            results.memory = measure_memory(via, one.worker_pids(), args.streams)
        if not args.skip_ledger:
            say(f"ledger: {args.ledger_seconds:g} s sustained at 16 clients")
            results.ledger = measure_ledger(stack, one, 16, args.ledger_seconds)
    results.header.append(f"Finished with {load_average()}.")
    return results


def _start_gateways(
    args: argparse.Namespace, stack: Stack, logs: Path, stack_: contextlib.ExitStack
) -> list[Gateway]:
    """The measured gateway (1 worker), the scaled one, then other servers; all stay up."""
    wanted = [("gateway, 1 worker", 1, "uvicorn", REPO_ROOT)]
    if args.workers > 1:
        wanted.append((f"gateway, {args.workers} workers", args.workers, "uvicorn", REPO_ROOT))
    for server in args.compare:
        wanted.append((f"gateway on {server}, 1 worker", 1, server, REPO_ROOT))
    if args.candidate is not None:
        wanted.append(("candidate, 1 worker", 1, "uvicorn", args.candidate.resolve()))
    gateways = []
    for index, (name, workers, server, source) in enumerate(wanted):
        port = free_port()
        log = logs / f"{name.replace(' ', '-').replace(',', '')}.log"
        say(f"starting {name} on :{port}")
        gateways.append(
            stack_.enter_context(
                running_gateway(
                    stack,
                    name,
                    port,
                    workers=workers,
                    server=server,
                    log=log,
                    body=CHAT_BODY,
                    source=source,
                    tag=f"g{index}",
                )
            )
        )
    return gateways


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: ~1 s per figure")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (5; quick 1)")
    parser.add_argument("--repeat", type=int, help="interleaved rounds, median shown (3; quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", type=int, default=2, help="the scaled gateway (1: none)")
    parser.add_argument(
        "--compare", nargs="*", default=[], choices=("granian",), help="also measure these servers"
    )
    parser.add_argument(
        "--candidate",
        type=Path,
        help="another source tree (a changed copy) to run as one more 1-worker gateway: an A/B",
    )
    parser.add_argument("--streams", type=int, help="open streams for the memory figure (1000)")
    parser.add_argument("--stream-requests", type=int, help="streamed requests for TTFT (500)")
    parser.add_argument("--ledger-seconds", type=float, help="sustained load for the ledger (20)")
    parser.add_argument("--micro-rounds", type=int)
    parser.add_argument("--micro-repeats", type=int)
    parser.add_argument("--idle-wait", type=float, help="max s to wait for an idle machine (30)")
    parser.add_argument("--idle-threshold", type=float, default=0.85)
    parser.add_argument("--skip-micro", action="store_true")
    parser.add_argument("--skip-streaming", action="store_true")
    parser.add_argument("--skip-ledger", action="store_true")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--output", type=Path, help="Markdown file (default var/benchmarks/overhead-<time>.md)"
    )
    return parser


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for server in args.compare:
        if importlib.util.find_spec(server) is None:
            raise SystemExit(f"{server} is not installed: .venv/bin/pip install {server}")
    if args.output is None:
        args.output = (
            REPO_ROOT / "var" / "benchmarks" / f"overhead-{time.strftime('%Y%m%d-%H%M%S')}.md"
        )
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = resolve(build_parser().parse_args(raw))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # unwinds like Ctrl-C: children stop
    command = " ".join([".venv/bin/python -m benchmarks.overhead", *raw])
    try:
        results = run(args, command)
    except KeyboardInterrupt:
        return 130
    text = markdown(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    say("")
    say(text)
    say(f"(written to {args.output})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
