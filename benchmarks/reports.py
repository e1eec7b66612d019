"""Billing reports over a month of 10 million generations: how long each report takes.

Seeds the daily rollup (`usage_daily`) exactly as the ledger writer would leave it after 10M
generations, in one server-side statement: `generate_series` makes every generation (its
key, app, provider, tokens, price version, cost to the pico-dollar) and the same GROUP BY as the
writer sums them. Then times the reports the API and CLI run (the same functions), and checks
that their totals equal the sum over the generated generations.

Needs the Postgres of the test suite (loopback); makes its own database and drops it.
Run: `.venv/bin/python -m benchmarks.reports` (about 1-3 minutes; `--generations N` to scale).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.reports.billing import billing_report
from gateway.reports.controller import ACTIVITY_GROUPS
from gateway.reports.periods import Period
from gateway.reports.query import ReportQuery, run_report

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
MONTH = Period(date(2026, 10, 1), date(2026, 11, 1))
KEYS = 500
APPS = 3
RUNS = 5

# provider: prices before and after the 15th (USD per 1M tokens: prompt, completion, cache read).
PROVIDERS = [
    ("groq", ("0.075", "0.30", "0.0375"), ("0.1", "0.35", "0.05")),
    ("together", ("0.05", "0.20", "0.025"), ("0.06", "0.24", "0.03")),
    ("deepinfra", ("0.03", "0.14", "0.03"), ("0.03", "0.14", "0.03")),
    ("nebius", ("0.05", "0.20", "0.05"), ("0.05", "0.20", "0.05")),
    ("fireworks", ("0.07", "0.30", "0.035"), ("0.07", "0.30", "0.035")),
    ("local", ("0", "0", "0"), ("0", "0", "0")),
]


def _prices_values() -> str:
    rows = []
    for index, (name, before, after) in enumerate(PROVIDERS):
        for phase, (p, c, cr) in enumerate((before, after)):
            version = f"{name}-v{phase if before != after else 0}"
            rows.append(f"({index}, {phase}, '{name}', '{version}', {p}, {c}, {cr})")
    return ",\n        ".join(rows)


# One generation per i: every key is busy every day with several providers and two apps
# (about 186,000 rollup rows for the month, each key's day with each provider and app apart);
# a price change on the 15th for two providers; every 89th cancelled (half its completion),
# every 97th failed (nothing billed).
GENERATIONS = f"""
    WITH prices(idx, phase, provider, version, p, c, cr) AS (VALUES
        {_prices_values()}
    ), g AS (
        SELECT i,
               DATE '{MONTH.start.isoformat()}' + (i % {MONTH.days})::int AS day,
               'key-' || lpad(((i / {MONTH.days}) % {KEYS})::text, 4, '0') AS api_key_id,
               'app-' || (((i / {MONTH.days}) % {KEYS}) % {APPS}
                          + (i / {MONTH.days * KEYS * len(PROVIDERS)}) % 2) AS app,
               (i / {MONTH.days * KEYS}) % {len(PROVIDERS)} AS idx,
               CASE WHEN i % 97 = 0 THEN 0 WHEN i % 89 = 0 THEN 2 ELSE 1 END AS portion,
               200 + (i * 37) % 3000 AS prompt,
               20 + (i * 11) % 800 AS completion,
               ((i % 3) * 128) AS cached,
               i % 50 AS reasoning,
               i % 97 = 0 AS failed, i % 89 = 0 AS cancelled
        FROM generate_series(0::bigint, $1::bigint - 1) AS i
    ), billed AS (
        SELECT g.day, g.api_key_id, g.app, 'openai/gpt-oss-20b' AS model, pr.provider,
               'openai/gpt-oss-20b@' || pr.provider AS endpoint_id, pr.version AS price_version,
               g.failed, g.cancelled,
               CASE g.portion WHEN 0 THEN 0 ELSE g.prompt END AS prompt,
               CASE g.portion WHEN 0 THEN 0 WHEN 2 THEN g.completion / 2
                    ELSE g.completion END AS completion,
               CASE g.portion WHEN 0 THEN 0 ELSE g.cached END AS cached,
               CASE g.portion WHEN 0 THEN 0 ELSE g.reasoning END AS reasoning,
               pr.p, pr.c, pr.cr
        FROM g JOIN prices pr
          ON pr.idx = g.idx AND pr.phase = (CASE WHEN g.day >= DATE '2026-10-15' THEN 1 ELSE 0 END)
    ), priced AS (
        SELECT *,
               ((prompt - cached) * p + cached * cr + completion * c) / 1000000 AS cost,
               (cached * (p - cr)) / 1000000 AS cache_discount
        FROM billed
    )
"""

SEED = (
    GENERATIONS
    + """
    INSERT INTO usage_daily (day, api_key_id, app, model, provider, endpoint_id, price_version,
        requests, errors, cancelled, prompt_tokens, completion_tokens, cached_tokens,
        cache_write_tokens, reasoning_tokens, cost, cache_discount)
    SELECT day, api_key_id, app, model, provider, endpoint_id, price_version,
           count(*), count(*) FILTER (WHERE failed), count(*) FILTER (WHERE cancelled),
           sum(prompt), sum(completion), sum(cached), 0, sum(reasoning),
           sum(cost), sum(cache_discount)
    FROM priced GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
)
EXPECTED = GENERATIONS + "SELECT count(*), sum(cost), sum(cache_discount) FROM priced"

REPORTS: list[tuple[str, tuple[str, ...], str | None]] = [
    ("month total (no grouping)", (), None),
    ("per model and provider (each price version)", ("model", "provider"), None),
    ("per day", ("day",), None),
    ("per key", ("key",), None),
    ("per key and provider", ("key", "provider"), None),
    ("per key, app, model, provider", ("key", "app", "model", "provider"), None),
    ("per key and day", ("key", "day"), None),
    ("one user key, per provider and day", ("provider", "day"), "key-0042"),
    ("export: per key, app, provider and day", ("key", "app", "provider", "day"), None),
]


async def _timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    await action()  # warm the cache and the connection
    times, result = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        result = await action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), result


async def measure(engine: AsyncEngine, expected: tuple[int, Decimal, Decimal]) -> list[str]:
    count, cost, discount = expected
    lines = [
        "| report over the month | lines | median ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for label, groups, key in REPORTS:

        async def run(groups: tuple[str, ...] = groups, key: str | None = key) -> Any:
            return await billing_report(engine, MONTH, groups, key)

        median, worst, report = await _timed(run)
        if key is None:
            assert report.totals.requests == count, (label, report.totals.requests)
            assert report.totals.cost == cost and report.totals.cache_discount == discount, label
        lines.append(f"| {label} | {len(report.lines):,} | {median:.0f} | {worst:.0f} |")

    async def csv_of_largest() -> Any:
        return (await billing_report(engine, MONTH, ("key", "app", "provider", "day"))).csv()

    median, worst, text = await _timed(csv_of_largest)
    lines.append(
        f"| the export as CSV ({len(text) // 1024:,} KiB) | {text.count(chr(10)) - 1:,} "
        f"| {median:.0f} | {worst:.0f} |"
    )

    async def activity() -> Any:
        return await run_report(engine, ReportQuery(MONTH, ACTIVITY_GROUPS))

    median, worst, rows = await _timed(activity)
    assert sum((r.sums.cost for r in rows), Decimal(0)) == cost
    lines.append(
        f"| activity, 30 days (per day and endpoint) | {len(rows):,} | {median:.0f} | {worst:.0f} |"
    )
    return lines


async def main(generations: int, keep: bool) -> None:
    name = f"gw_bench_reports_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await upgrade_to_head_async(url)
        conn = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            await conn.execute(SEED, generations)
            await conn.execute("ANALYZE usage_daily")
            seeded_s = time.perf_counter() - started
            rollup_rows = await conn.fetchval("SELECT count(*) FROM usage_daily")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('usage_daily'))"
            )
            started = time.perf_counter()
            count, cost, discount = await conn.fetchrow(EXPECTED, generations)
            expected_s = time.perf_counter() - started
        finally:
            await conn.close()
        print(
            f"seeded {generations:,} generations into {rollup_rows:,} usage_daily rows ({size}) "
            f"in {seeded_s:.1f} s; summing the generations themselves took {expected_s:.1f} s: "
            f"{count:,} generations, cost {cost} USD, cache discount {discount} USD"
        )
        engine = create_async_engine(url)
        try:
            lines = await measure(engine, (count, cost, discount))
        finally:
            await engine.dispose()
        print("\n".join(lines))
        print(
            f"(median and max of {RUNS} runs after one warm-up; every total checked equal to "
            "the generations' own sum)"
        )
    finally:
        if not keep:
            admin = await asyncpg.connect(ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true", help="don't drop the database afterwards")
    args = parser.parse_args()
    asyncio.run(main(args.generations, args.keep))
