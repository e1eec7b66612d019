"""The ledger writer's CPU per generation, end to end: events queued on a Redis stream, then the
writer's own loop (read, decode, rows, commit, ack) timed with `time.process_time`.

Needs the Redis and Postgres of the test suite (loopback); makes its own database and prefix and
removes both. Also reports the Postgres backend's CPU (from /proc), so a change that only moves
work into the server shows up. Run: `.venv/bin/python -m benchmarks.ledger_writer`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import uvloop
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.ledger.events import GenerationEvent
from gateway.ledger.migrate import upgrade_to_head_async
from gateway.ledger.rows import LedgerRows
from gateway.ledger.store import LedgerStore
from gateway.ledger.stream import RedisStreamLedger
from gateway.ledger.upkeep import upkeep_for
from gateway.ledger.writer import LedgerWriter
from gateway.resp import RespClient
from providers.pricing import Cost
from providers.usage import Usage
from routing.executor import Attempt

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
PRE_PING = True
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Figure:
    batch: int
    best_us: float
    median_us: float
    server_us: float  # Postgres backend CPU per generation, best run (10 ms ticks: coarse)


def sample_event(n: int) -> GenerationEvent:
    """A typical answered generation: one attempt, no routing explanation."""
    now = datetime.now(UTC)
    return GenerationEvent(
        id=f"gen-bench-{n:08d}-{random.getrandbits(32):08x}",
        created_at=now,
        requested_model="openai/gpt-oss-20b",
        model="openai/gpt-oss-20b",
        mode="balanced",
        streamed=False,
        api_key_id=f"key-{n % 7}",
        provider="groq",
        endpoint_id="openai/gpt-oss-20b@groq",
        finish_reason="stop",
        native_finish_reason="stop",
        usage=Usage(prompt_tokens=120, completion_tokens=90, cached_tokens=64),
        cost=Cost(
            prompt=Decimal("0.0000012"),
            completion=Decimal("0.000009"),
            request=Decimal(0),
            cache_discount=Decimal("0.00000032"),
        ),
        latency_s=0.42,
        ttft_s=0.05,
        generation_s=0.37,
        attempts=[Attempt("openai/gpt-oss-20b@groq", "groq", now, 0.41, 0.05)],
    )


async def _backend_ticks(engine: AsyncEngine) -> int:
    """utime + stime of every backend of this database (the writer's connections)."""
    async with engine.connect() as conn:
        pids = (
            await conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            )
        ).scalars()
        return sum(_ticks_of(pid) for pid in pids)


def _ticks_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a tiny procfs read
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


class NoStore:
    """Takes every batch as new without a database: the writer's cost outside the store."""

    async def write(self, batch: Sequence[LedgerRows]) -> int:
        return len(batch)


async def measure(
    engine: AsyncEngine,
    redis: Redis,
    batch: int,
    events: int,
    repeats: int,
    *,
    profile: bool = False,
    store: bool = True,
) -> Figure:
    prefix = f"bench-writer-{uuid.uuid4().hex[:8]}:"
    resp = RespClient.from_url(REDIS_URL)  # the request path's client: emit is not timed
    stream = RedisStreamLedger(redis, prefix, claim_idle_s=300, resp=resp)
    writer = LedgerWriter(
        stream,
        LedgerStore(engine, upkeep_for(engine, 90)) if store else NoStore(),  # type: ignore[arg-type]
        batch_size=batch,
        flush_interval_s=0.001,
        drain_timeout_s=1,
    )
    writer._last_batch = -1e9  # no linger: every step is one full batch
    runs, server = [], []
    profiler = cProfile.Profile(time.process_time) if profile else None
    try:
        await stream.emit(sample_event(0))
        await writer.step(0)  # group, partitions, statements prepared
        for _ in range(repeats):
            for n in range(events):
                await stream.emit(sample_event(n))
            ticks = await _backend_ticks(engine)
            if profiler:
                profiler.enable()
            start = time.process_time()
            while await writer.step(0):
                writer._last_batch = -1e9
            used = time.process_time() - start
            if profiler:
                profiler.disable()
            server.append((await _backend_ticks(engine) - ticks) / CLOCK_TICKS)
            assert await stream.depth() == 0
            runs.append(used / events * 1e6)
    finally:
        await resp.aclose()
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return Figure(batch, min(runs), statistics.median(runs), min(server) / events * 1e6)


async def main(args: argparse.Namespace) -> None:
    name = f"gw_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = args.admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{url}/{name}"
    await upgrade_to_head_async(url)
    engine = create_async_engine(url, pool_pre_ping=PRE_PING)  # as `gateway.resources` makes it
    redis = Redis.from_url(args.redis)
    try:
        print("| batch | writer CPU µs/generation, best | median | Postgres backend CPU µs |")
        print("|---:|---:|---:|---:|")
        for batch in args.batch:
            events = max(args.events - args.events % batch, batch)
            if batch == 1:
                events = min(events, 300)  # a transaction each: keep the run short
            figure = await measure(
                engine, redis, batch, events, args.repeats, profile=args.profile, store=args.store
            )
            print(
                f"| {batch} | {figure.best_us:,.1f} | {figure.median_us:,.1f} "
                f"| {figure.server_us:,.0f} |"
            )
    finally:
        await redis.aclose()
        await engine.dispose()
        admin = await asyncpg.connect(args.admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ledger_writer", description=__doc__)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--events", type=int, default=2000, help="per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--no-store", dest="store", action="store_false", help="writer without the database"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the timed runs")
    parser.add_argument("--admin-dsn", default=ADMIN_DSN)
    parser.add_argument("--redis", default=REDIS_URL)
    uvloop.run(main(parser.parse_args()))
