"""`python -m benchmarks.soak --minutes 30`: two `gateway serve` replicas on one Redis and one
Postgres, a steady rate with random upstream faults from the provider simulator, samples every
10 s; writes a CSV, a PNG and a summary under benchmarks/results/ and exits 1 unless every series
stayed flat (bounds in `benchmarks.soak.verdict`) and every answered generation is in the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from redis import Redis

from benchmarks.harness.processes import HOST, free_port, serving
from benchmarks.harness.stack import REPO_ROOT, Stack, fresh_backing, prepare_stack
from benchmarks.soak.load import Tally, random_outages, steady_load, upstream_outcomes
from benchmarks.soak.probes import sample_ledger, sample_replica
from benchmarks.soak.verdict import judge, plot, summary, write_csv

PROVIDERS = ("alpha", "beta", "gamma")  # the harness catalog's endpoints
FAULTS = (
    "http_500 = 0.005, http_502 = 0.005, http_503 = 0.005, http_429 = 0.005, hang = 0.002, "
    "reset = 0.005, stream_cut = 0.005, invalid_json = 0.005, empty = 0.005"
)
DRAIN_TIMEOUT_S = 120.0  # after the load stops, the ledger must be written within this
SOAK_ENV = {
    "GATEWAY_LOG_LEVEL": "warning",
    "GATEWAY_ROUTING_FIRST_TOKEN_TIMEOUT_S": "3",  # a hung upstream costs 3 s, then falls back
    "GATEWAY_ROUTING_IDLE_TIMEOUT_S": "3",
}


def profiles_toml() -> str:
    parts = []
    for i, name in enumerate(PROVIDERS):
        parts.append(
            f"[providers.{name}]\nseed = {i + 1}\nttft_ms = {20 + 30 * i}\nttft_jitter_ms = 10\n"
            f"tokens_per_s = {2000 - 500 * i}\ncompletion_tokens = 24\n"
            "completion_jitter_tokens = 8\nstream_chunk_tokens = 4\nhang_max_s = 5\n"
            f"retry_after_s = 1\nfailures = {{ {FAULTS} }}\n"
        )
    return "\n".join(parts)


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def simulator(workdir: Path) -> Iterator[int]:
    profiles = workdir / "profiles.toml"
    profiles.write_text(profiles_toml())
    port = free_port()
    command = [sys.executable, "-m", "providers.simulator", "--port", str(port)]
    with serving(
        [*command, "--profiles", str(profiles)],
        lambda: _healthy_control(port),
        cwd=REPO_ROOT,
        log=workdir / "simulator.log",
    ):
        yield port


def _healthy_control(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        conn.request("GET", "/_control/providers")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def replica(stack: Stack, workdir: Path, name: str) -> Iterator[tuple[int, int]]:
    """(port, pid) of one `gateway serve` sharing the stack's Redis prefix and database."""
    port = free_port()
    env = {**stack.env, **SOAK_ENV, "GATEWAY_LEDGER_SPOOL_DIR": str(workdir / f"spool-{name}")}
    command = [sys.executable, "-m", "gateway.cli", "serve", "--no-migrate", "--port", str(port)]
    with serving(
        command, lambda: _healthy(port), cwd=REPO_ROOT, env=env, log=workdir / f"{name}.log"
    ) as proc:
        yield port, proc.pid


async def _sampler(
    replicas: dict[str, tuple[int, int]],
    upstream_port: int,
    redis: Redis,
    stream: str,
    every_s: float,
    stop: asyncio.Event,
) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    started = time.monotonic()
    while True:
        row: dict[str, float] = {"t_s": round(time.monotonic() - started, 1)}
        for name, (_, pid) in replicas.items():
            sample = await asyncio.to_thread(sample_replica, pid, upstream_port)
            row[f"{name}.rss_mb"] = sample.rss_mb
            row[f"{name}.open_fds"] = sample.open_fds
            row[f"{name}.upstream_connections"] = sample.upstream_connections
        ledger = await asyncio.to_thread(sample_ledger, redis, stream)
        row["ledger_lag_s"] = ledger.lag_s
        row["ledger_pending"] = ledger.pending
        rows.append(row)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        if stop.is_set():
            return rows


async def _drained(redis: Redis, stream: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_TIMEOUT_S:
        if (await asyncio.to_thread(sample_ledger, redis, stream)).depth == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return float("inf")


async def _in_ledger(dsn: str, ids: list[str]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetchval("SELECT count(*) FROM generations WHERE id = ANY($1)", ids)
    finally:
        await conn.close()
    return int(found)


async def soak(
    args: argparse.Namespace, stack: Stack, replicas: dict[str, tuple[int, int]], upstream: int
) -> tuple[list[dict[str, float]], Tally, int, float, int, dict[str, int]]:
    stream = stack.backing.ledger_stream(stack.backing.redis_prefix)
    redis = Redis.from_url(stack.backing.redis_url)
    stop, sampling_stop = asyncio.Event(), asyncio.Event()
    urls = [f"http://{HOST}:{port}/v1/chat/completions" for port, _ in replicas.values()]
    try:
        sampler = asyncio.create_task(
            _sampler(replicas, upstream, redis, stream, args.sample_s, sampling_stop)
        )
        load = asyncio.create_task(
            steady_load(urls, stack.free_auth_headers, args.rate, stop, args.seed)
        )
        outages = asyncio.create_task(
            random_outages(f"http://{HOST}:{upstream}", PROVIDERS, stop, args.seed)
        )
        await asyncio.sleep(args.minutes * 60)  # the soak's duration
        stop.set()
        tally = await load
        outage_count = await outages
        drain_s = await _drained(redis, stream)
        sampling_stop.set()
        rows = await sampler
        found = await _in_ledger(stack.backing.dsn, tally.answered)
        upstream_did = await upstream_outcomes(f"http://{HOST}:{upstream}")
        return rows, tally, outage_count, drain_s, found, upstream_did
    finally:
        redis.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second (default 20)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="sampling period (10 s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results", help="CSV, PNG"
    )
    parser.add_argument(
        "--logs-dir", type=Path, default=REPO_ROOT / "var" / "soak", help="processes' logs"
    )
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    stem = f"soak-{stamp}-{args.minutes:g}m"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    workdir = args.logs_dir / stem  # logs, catalog, profiles, spools: never committed
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        fresh_backing(args.postgres, args.redis) as backing,
        simulator(workdir) as upstream,
    ):
        stack = prepare_stack(backing, upstream, workdir)
        with replica(stack, workdir, "a") as a, replica(stack, workdir, "b") as b:
            rows, tally, outages, drain_s, found, upstream_did = asyncio.run(
                soak(args, stack, {"a": a, "b": b}, upstream)
            )
    verdicts = judge(rows)
    complete = found == len(tally.answered)
    passed = complete and all(v.flat for v in verdicts)
    write_csv(args.output_dir / f"{stem}.csv", rows)
    plot(args.output_dir / f"{stem}.png", rows, f"{stem}: 2 replicas, {args.rate:g} req/s")
    report = "\n".join(
        [
            f"# Soak {stem}: {'PASS' if passed else 'FAIL'}",
            "",
            f"{args.minutes:g} min at {args.rate:g} req/s over 2 replicas, sampled every "
            f"{args.sample_s:g} s; {tally.sent} sent, {tally.skipped} ticks skipped (in-flight "
            f"cap), {outages} provider outages of 10 s, ledger drained {drain_s:.1f} s after "
            f"the load; {found} of {len(tally.answered)} answered generations in the ledger.",
            "",
            "Answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.outcomes.items())),
            "",
            "Upstream attempts: " + ", ".join(f"{k}: {v}" for k, v in sorted(upstream_did.items())),
            "",
            summary(verdicts),
            "",
        ]
    )
    (args.output_dir / f"{stem}.md").write_text(report)
    print(report)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
