"""The stats API on a big ledger: seeds N generations (10 million by default) and their attempts
over the last 30 days straight into Postgres, builds the rollups the ledger writer keeps, then
times every stats query through the app (no network) and writes a Markdown table.

Seeding is set-based SQL (`generate_series`, one statement per day into that day's partition)
and the rollups are the same sums the writer keeps (`gateway.stats.rollups`, the migration's
backfill), so what is timed is exactly what a live gateway reads. Makes its own database and
drops it unless `--keep`; `--database NAME` times an already seeded one again.

Run: `.venv/bin/python -m benchmarks.stats` (10M: about 10-20 minutes on 2 cores, most of it
seeding), `--generations 20000` for a smoke run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.app import create_app
from gateway.ledger.migrate import upgrade_to_head_async
from gateway.ledger.partitions import create_statement
from gateway.ledger.postgres_batch import ROLLUP_KEYS, ROLLUP_SUMS
from gateway.settings import CatalogSettings, DatabaseSettings, ServerSettings, Settings
from gateway.stats import queries
from gateway.stats.params import window_period

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "bench-admin-token"
DAYS = 30
KEYS = 200  # API keys; each uses one of 2 apps of its own among APPS
APPS = 60
PROVIDERS = ("groq", "together", "deepinfra", "fireworks", "nebius", "local")
MODEL = "openai/gpt-oss-20b"
BUDGET_MS = 100.0
RESULTS = Path("benchmarks/results")

# One day of generations: n in [first, last]; every figure is a function of n (reproducible).
SEED_GENERATIONS = """
INSERT INTO generations (id, created_at, api_key_id, app_referer, app_title, requested_model,
    model, provider, endpoint_id, mode, status, http_status, error_message, finish_reason,
    native_finish_reason, streamed, cancelled, prompt_tokens, completion_tokens, cached_tokens,
    cache_write_tokens, reasoning_tokens, cost, prompt_cost, completion_cost, request_cost,
    cache_discount, upstream_cost, latency_ms, ttft_ms, generation_ms, throughput,
    attempt_count, explanation)
SELECT 'gen-bench-' || n, ts, 'key-' || (h % {keys}), NULL,
       'app-' || ((h % {keys}) * 7 + (h / {keys}) % 2) % {apps}, '{model}', '{model}', p,
       '{model}@' || p, m, CASE WHEN err THEN 'error' ELSE 'ok' END,
       CASE WHEN err THEN 502 ELSE 200 END, CASE WHEN err THEN 'upstream 500' END,
       CASE WHEN err THEN 'error' ELSE 'stop' END, CASE WHEN err THEN NULL ELSE 'stop' END,
       streamed, false, pt, ct, cached, 0, ct / 5,
       (pt - cached) * 0.000000075 + cached * 0.0000000375 + ct * 0.0000003,
       (pt - cached) * 0.000000075 + cached * 0.0000000375, ct * 0.0000003, 0,
       cached * 0.0000000375, NULL, 250 + h % 4000,
       CASE WHEN streamed THEN 80 + h % 900 END, 150 + h % 3000, 40 + h % 600,
       CASE WHEN h % 50 = 7 THEN 2 ELSE 1 END, NULL
FROM (
    SELECT n, h, $3::timestamptz + (n - $1) * ($4::float8 / ($2 - $1 + 1)) * interval '1 second'
               AS ts,
           (ARRAY{providers})[1 + (h / 7) % {n_providers}] AS p,
           (ARRAY['balanced', 'nitro', 'floor', 'exacto'])[1 + (h / 11) % 4] AS m,
           h % 100 < 3 AS err, h % 2 = 0 AS streamed, 200 + h % 3000 AS pt,
           20 + h % 700 AS ct, CASE WHEN h % 3 = 0 THEN (200 + h % 3000) / 2 ELSE 0 END AS cached
    FROM (SELECT n, (n * 2654435761) % 4294967296 AS h
          FROM generate_series($1::bigint, $2::bigint) AS n) AS g
) AS s
"""
# Their attempts: the served one, and a failed first try on another provider for 2%.
SEED_ATTEMPTS = """
INSERT INTO attempts (generation_id, seq, created_at, endpoint_id, provider, started_at,
    ended_at, outcome, http_status, error_class, error_message, latency_ms, ttft_ms)
SELECT id, s.seq, created_at, endpoint, prov, created_at, created_at, outcome, status, cls,
       msg, latency, ttft
FROM (
    SELECT g.id, g.created_at, 0 AS seq, g.endpoint_id AS endpoint, g.provider AS prov,
           CASE WHEN g.status = 'error' THEN 'http' ELSE 'ok' END AS outcome,
           CASE WHEN g.status = 'error' THEN 500 END AS status,
           CASE WHEN g.status = 'error' THEN 'UpstreamServerError' END AS cls,
           CASE WHEN g.status = 'error' THEN 'upstream 500' END AS msg,
           g.latency_ms AS latency, g.ttft_ms AS ttft
    FROM generations g WHERE g.created_at >= $1 AND g.created_at < $2
    UNION ALL
    SELECT g.id, g.created_at, 1, '{model}@groq', 'groq', 'timeout', NULL, 'UpstreamTimeout',
           'first token timeout', 5000, NULL
    FROM generations g
    WHERE g.created_at >= $1 AND g.created_at < $2 AND g.attempt_count = 2
) AS s
"""


def _seed_sql() -> tuple[str, str]:
    providers = "[" + ", ".join(f"'{p}'" for p in PROVIDERS) + "]"
    generations = SEED_GENERATIONS.format(
        keys=KEYS, apps=APPS, model=MODEL, providers=providers, n_providers=len(PROVIDERS)
    )
    return generations, SEED_ATTEMPTS.format(model=MODEL)


def _usage_rollup_sql() -> str:
    keys, sums = ", ".join(ROLLUP_KEYS.values()), ", ".join(ROLLUP_SUMS.values())
    positions = ", ".join(str(i + 1) for i in range(len(ROLLUP_KEYS)))
    return (
        f"INSERT INTO usage_hourly ({', '.join([*ROLLUP_KEYS, *ROLLUP_SUMS])}) "
        f"SELECT {keys}, {sums} FROM generations GROUP BY {positions}"
    )


async def seed(dsn: str, generations: int, now: datetime) -> dict[str, float]:
    """Seed `generations` rows over the DAYS days before `now`; seconds per phase."""
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        first_day = (now - timedelta(days=DAYS)).date()
        days = [first_day + timedelta(days=i) for i in range(DAYS + 1)]
        for day in days:
            for table in ("generations", "attempts"):
                await conn.execute(create_statement(table, day))
        insert_generations, insert_attempts = _seed_sql()
        start_ts = now - timedelta(days=DAYS)
        per_second = generations / (DAYS * 86400.0)
        started = time.monotonic()
        n = 1
        for i in range(DAYS):
            day_start = start_ts + timedelta(days=i)
            count = round(per_second * 86400 * (i + 1)) - (n - 1)
            await conn.execute(insert_generations, n, n + count - 1, day_start, 86400.0)
            n += count
            print(f"  seeded day {i + 1}/{DAYS}: {n - 1:,} generations", flush=True)
        timings["generations"] = time.monotonic() - started
        print(f"  generations: {timings['generations']:.0f} s", flush=True)
        started = time.monotonic()
        for i in range(DAYS):
            lower = start_ts + timedelta(days=i)
            await conn.execute(insert_attempts, lower, lower + timedelta(days=1))
        timings["attempts"] = time.monotonic() - started
        print(f"  attempts: {timings['attempts']:.0f} s", flush=True)
        started = time.monotonic()
        migration = importlib.import_module("migrations.versions.0006_stats_rollups")
        await conn.execute(_usage_rollup_sql())
        await conn.execute(migration.BACKFILL_STATS)
        await conn.execute(migration.BACKFILL_ATTEMPTS)
        timings["rollups"] = time.monotonic() - started
        print(f"  rollups: {timings['rollups']:.0f} s", flush=True)
        started = time.monotonic()
        await conn.execute("ANALYZE")
        timings["analyze"] = time.monotonic() - started
    finally:
        await conn.close()
    return timings


async def counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in (
                "generations",
                "attempts",
                "usage_hourly",
                "stats_rollup",
                "attempt_stats_hourly",
            )
        }
    finally:
        await conn.close()


def _iso(moment: datetime) -> str:
    return moment.isoformat()


Timed = tuple[str, list[float], tuple[int, int] | None]


async def time_queries(database_url: str, repeats: int) -> list[Timed]:
    now = datetime.now(UTC)
    day_ago, month_ago = _iso(now - timedelta(days=1)), _iso(now - timedelta(days=30))
    week_ago = _iso(now - timedelta(days=7))
    settings = Settings(
        server=ServerSettings(admin_token=ADMIN_TOKEN),
        catalog=CatalogSettings(),
        database=DatabaseSettings(database_url=database_url),
    )
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    requests: list[tuple[str, str, dict[str, str]]] = [
        (
            "endpoints, window 1d (+30d effective price)",
            "/api/v1/stats/endpoints",
            {"window": "1d"},
        ),
        ("endpoints, window 30d", "/api/v1/stats/endpoints", {"window": "30d"}),
        ("usage by provider, hourly, 24 h", "/api/v1/stats/usage", {"group_by": "provider"}),
        (
            "usage by model, daily, 30 days",
            "/api/v1/stats/usage",
            {"group_by": "model", "bucket": "day", "from": month_ago},
        ),
        (
            "usage by key, daily, 30 days",
            "/api/v1/stats/usage",
            {"group_by": "key", "bucket": "day", "from": month_ago},
        ),
        (
            "usage by app, hourly, 7 days",
            "/api/v1/stats/usage",
            {"group_by": "app", "bucket": "hour", "from": week_ago},
        ),
        ("top apps, 30 days", "/api/v1/stats/apps", {"from": month_ago}),
        ("history, hourly, 24 h", "/api/v1/stats/history", {"from": day_ago}),
        ("history, daily, 30 days", "/api/v1/stats/history", {"bucket": "day", "from": month_ago}),
        ("recent failures, 50", "/api/v1/stats/failures", {"limit": "50"}),
    ]
    results: list[tuple[str, list[float]]] = []
    sizes: dict[str, tuple[int, int]] = {}  # query -> (rows in data, bytes)
    app = create_app(settings)
    async with AsyncTestClient(app, base_url="http://127.0.0.1") as client:
        for name, path, params in requests:
            samples = []
            for _ in range(repeats + 1):  # the first run warms caches and is dropped
                started = time.perf_counter()
                response = await client.get(path, params=params, headers=headers)
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (path, response.text)
            sizes[name] = (len(response.json()["data"]), len(response.content))
            results.append((name, samples[1:]))
        engine = create_async_engine(database_url)
        try:
            period = window_period("30d", now)
            for label, call in (
                (
                    "one key's usage by model, daily, 30 days (query only)",
                    lambda: queries.usage(engine, period, "day", "model", "key-17"),
                ),
                (
                    "one key's top apps, 30 days (query only)",
                    lambda: queries.top_apps(engine, period, "key-17", 20),
                ),
            ):
                results.append((label, await _timed(call, repeats)))
        finally:
            await engine.dispose()
    return [(name, samples, sizes.get(name)) for name, samples in results]


async def _timed(call: Callable[[], Awaitable[Any]], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples[1:]


def report(
    generations: int,
    seeded: dict[str, float] | None,
    sizes: dict[str, int],
    results: list[Timed],
    repeats: int,
) -> str:
    lines = [
        f"# Stats API on {sizes['generations']:,} generations "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Rows: {', '.join(f'{t} {n:,}' for t, n in sizes.items())}.",
    ]
    if seeded:
        lines.append(
            "Seeding: " + ", ".join(f"{phase} {s:.0f} s" for phase, s in seeded.items()) + "."
        )
    lines += [
        "",
        f"Each query {repeats} times after one warm-up, through the app (AsyncTestClient: "
        "routing, auth, SQL, JSON; no network) unless marked. Load average before the run: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.",
        "",
        "| query | rows returned | JSON KB | p50 ms | max ms | under 100 ms |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, samples, size in results:
        worst = max(samples)
        rows, kb = (f"{size[0]:,}", f"{size[1] / 1024:,.0f}") if size else ("", "")
        lines.append(
            f"| {name} | {rows} | {kb} | {statistics.median(samples):.1f} | {worst:.1f} | "
            f"{'yes' if worst < BUDGET_MS else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def run(args: argparse.Namespace) -> int:
    name = args.database or f"gw_bench_stats_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    dsn = f"{base}/{name}"
    database_url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    seeded: dict[str, float] | None = None
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        if not args.database:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        if not args.database:
            await upgrade_to_head_async(database_url)
            print(f"seeding {args.generations:,} generations into {name}", flush=True)
            seeded = await seed(dsn, args.generations, datetime.now(UTC))
        sizes = await counts(dsn)
        results = await time_queries(database_url, args.repeats)
        text = report(args.generations, seeded, sizes, results, args.repeats)
        print(text)
        if args.output:
            _write(Path(args.output), text)
        met = all(max(samples) < BUDGET_MS for _, samples, _ in results)
        return 0 if met or args.generations < 10**6 else 1
    finally:
        if not args.keep and not args.database:
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--database", default=None, help="time an already seeded database")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument(
        "--output", default=str(RESULTS / f"stats-{date.today():%Y-%m-%d}.md"), help="table file"
    )
    return uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
