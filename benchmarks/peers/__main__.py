"""`python -m benchmarks.peers`: direct, this gateway (embedded default and everything on),
LiteLLM's proxy and Portkey's gateway, under the same wrk load against the same stub, one run.

Each server is a child process on 127.0.0.1 stopped at the end, also on Ctrl-C or SIGTERM; a
peer that can't be installed or doesn't answer is left out with the reason in the report.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness.machine import load_average, machine_summary
from benchmarks.harness.processes import free_port, serving
from benchmarks.harness.rounds import Idle, Row, Target, measure_once
from benchmarks.harness.stack import CHAT_BODY, REPO_ROOT
from benchmarks.harness.wrk import Run, lua_script, run_wrk
from benchmarks.peers import litellm, portkey
from benchmarks.peers.chart import write_chart
from benchmarks.peers.context import Context
from benchmarks.peers.install import DEFAULT_CACHE
from benchmarks.peers.ours import running_direct, running_embedded, running_everything_on
from benchmarks.peers.report import Results, markdown
from benchmarks.peers.servers import Running, Skip, probe

TARGETS = ("direct", "gateway", "gateway-full", "litellm", "portkey")
PACKAGES = ("litestar", "uvicorn", "uvloop", "httptools", "msgspec", "hiredis", "asyncpg")
WARMUP_CONNECTIONS = 16


def say(text: str) -> None:
    print(text, flush=True)


def _starters(
    ctx: Context, upstream_pid: int
) -> dict[str, Callable[[], contextlib.AbstractContextManager[Running]]]:
    return {
        "direct": lambda: running_direct(ctx, upstream_pid),
        "gateway": lambda: running_embedded(ctx),
        "gateway-full": lambda: running_everything_on(ctx),
        "litellm": lambda: litellm.running_litellm(ctx),
        "portkey": lambda: portkey.running_portkey(ctx),
    }


def start_targets(
    ctx: Context, upstream_pid: int, wanted: Sequence[str], stack: contextlib.ExitStack
) -> tuple[list[Running], list[str]]:
    """Every wanted target that starts and answers; the others as "name: why" lines."""
    starters = _starters(ctx, upstream_pid)
    running, skipped = [], []
    for key in wanted:
        say(f"starting {key}")
        try:
            running.append(stack.enter_context(starters[key]()))
        except Skip as skip:
            say(f"  skipped: {skip}")
            skipped.append(f"`{key}`: {skip}")
    return running, skipped


def measure(
    running: Sequence[Running], scripts: dict[str, Path], args: argparse.Namespace
) -> tuple[list[Row], list[str]]:
    """Each target at each client count, rounds interleaved; a target whose wrk run fails is
    dropped from the rest of the run (the failure is reported)."""
    runs: dict[tuple[str, int], list[Run]] = {}
    failed: dict[str, str] = {}
    idle = Idle(args.idle_wait, args.idle_threshold)
    for round_ in range(1, args.repeat + 1):
        for c in args.connections:
            for target in running:
                if target.name in failed:
                    continue
                spec = Target(
                    target.name, target.url, target.pids, scripts[target.name], target.extra_pids
                )
                try:
                    run = measure_once(spec, c, args.duration, idle)
                except (subprocess.SubprocessError, ValueError) as exc:
                    failed[target.name] = f"wrk failed at {c} clients: {exc}"
                    say(f"  {target.name}: {failed[target.name]}")
                    continue
                runs.setdefault((target.name, c), []).append(run)
                say(
                    f"  round {round_} c={c:<3} {target.name:<40} {run.requests_per_s:>9,.0f} "
                    f"req/s p50 {run.p50_ms:.2f} p99 {run.p99_ms:.2f} p99.9 {run.p999_ms:.2f} ms"
                    f"{' (machine was busy)' if run.busy else ''}"
                )
    rows = [Row(name, c, tuple(found)) for (name, c), found in runs.items()]
    return rows, [f"{name}: {why}" for name, why in failed.items()]


def run(args: argparse.Namespace, command: str) -> Results:
    started = datetime.now(UTC)
    header = [
        f"## Gateways side by side ({started:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_summary(PACKAGES)}; wrk -t1, {args.duration:g} s per run, "
        f"{args.repeat} round(s); {load_average()} before the run.",
    ]
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        args.logs.mkdir(parents=True, exist_ok=True)
        up_port = free_port()
        upstream = stack.enter_context(
            serving(
                [sys.executable, "-m", "benchmarks.harness.upstream", "--port", str(up_port)],
                lambda: probe(up_port, {}) is not None,
                cwd=REPO_ROOT,
            )
        )
        say(f"stub upstream on :{up_port}")
        ctx = Context(
            up_port, workdir, args.logs, args.cache, not args.no_install, args.postgres, args.redis
        )
        running, skipped = start_targets(ctx, upstream.pid, args.targets, stack)
        results = Results(header, [(t.name, t.setup) for t in running], skipped=skipped)
        scripts = {}
        for i, target in enumerate(running):
            scripts[target.name] = workdir / f"target-{i}.lua"
            scripts[target.name].write_text(lua_script(CHAT_BODY, target.headers))
        if args.warmup > 0:
            say("warm-up")
            for target in running:
                with contextlib.suppress(subprocess.SubprocessError, ValueError):
                    run_wrk(
                        target.url,
                        scripts[target.name],
                        connections=WARMUP_CONNECTIONS,
                        threads=1,
                        seconds=args.warmup,
                    )
        say("measuring")
        results.rows, failures = measure(running, scripts, args)
        results.skipped += failures
        say("stopping")
    results.header.append(f"Finished with {load_average()}.")
    return results


def _targets(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown target(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TARGETS)}"
        )
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument(
        "--targets",
        type=_targets,
        default=list(TARGETS),
        help=f"comma-separated, measured in this order (default {','.join(TARGETS)})",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (8)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds, median shown")
    parser.add_argument("--warmup", type=float, default=2.0, help="s of load per target first")
    parser.add_argument("--idle-wait", type=float, default=10.0, help="max s to wait for idle")
    parser.add_argument("--idle-threshold", type=float, default=0.85)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"peers installed here ({DEFAULT_CACHE})"
    )
    parser.add_argument(
        "--no-install", action="store_true", help="skip a peer that is not installed yet"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="Markdown file; the PNG goes next to it (default benchmarks/results/peers-<date>.md)",
    )
    parser.add_argument(
        "--logs", type=Path, help="server logs (default var/benchmarks/peers-<time>/)"
    )
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.output is None:
        args.output = REPO_ROOT / "benchmarks" / "results" / f"peers-{time.strftime('%Y-%m-%d')}.md"
    if args.logs is None:
        args.logs = REPO_ROOT / "var" / "benchmarks" / f"peers-{stamp}"
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # unwinds like Ctrl-C: children stop
    command = " ".join([".venv/bin/python -m benchmarks.peers", *raw])
    try:
        results = run(args, command)
    except KeyboardInterrupt:
        return 130
    chart = args.output.with_suffix(".png")
    if results.rows:
        title = (
            f"Chat completions via each target, same stub upstream, wrk -t1, "
            f"{args.duration:g} s per run ({datetime.now(UTC):%Y-%m-%d})"
        )
        write_chart(results.rows, [name for name, _ in results.targets], chart, title)
        results.chart = chart.name
    text = markdown(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    say("")
    say(text)
    say(f"(written to {args.output}{' and ' + str(chart) if results.chart else ''}; "
        f"logs in {args.logs})")  # fmt: skip
    return 0 if results.rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
