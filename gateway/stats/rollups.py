"""How the ledger writer keeps the stats rollups (`stats_rollup`, `attempt_stats_hourly`):
SQL for the Postgres batch statement and the same sums in Python for SQLite.

Only rows a batch actually inserted are rolled up, so a replayed event never counts twice.
Not a reader: the stats API's queries live in `gateway.stats.queries`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, tuple_
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.stats_tables import attempt_stats_hourly, stats_rollup

ZERO = Decimal(0)
STATS_KEYS = ("size", "dimension", "bucket", "model", "name")
SIZES = ("hour", "day")
STATS_SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "prompt_cost",
    "completion_cost",
    "cache_discount",
    "latency_ms_sum",
    "ttft_ms_sum",
    "ttft_count",
    "throughput_sum",
    "throughput_count",
)
ATTEMPT_KEYS = ("hour", "endpoint_id", "provider", "outcome", "error_class")
ATTEMPT_SUMS = ("attempts", "latency_ms_sum", "ttft_ms_sum", "ttft_count")

# Generation columns the stats rollup reads beyond what the usage rollup already returns.
GENERATION_INPUTS = ("prompt_cost", "completion_cost", "ttft_ms", "throughput")
ATTEMPT_INPUTS = ("created_at", "endpoint_id", "provider", "outcome", "error_class")
ATTEMPT_INPUTS_ALL = (*ATTEMPT_INPUTS, "latency_ms", "ttft_ms")

_HOUR = "date_trunc('hour', created_at, 'UTC')"
_APP = "coalesce(nullif(app_title, ''), nullif(app_referer, ''), '')"  # rows.app_of
_STATS_SQL = {
    "requests": "count(*)",
    "errors": "count(*) FILTER (WHERE status = 'error')",
    "prompt_tokens": "sum(prompt_tokens)",
    "completion_tokens": "sum(completion_tokens)",
    "cached_tokens": "sum(cached_tokens)",
    "reasoning_tokens": "sum(reasoning_tokens)",
    "cost": "sum(cost)",
    "prompt_cost": "sum(prompt_cost)",
    "completion_cost": "sum(completion_cost)",
    "cache_discount": "sum(cache_discount)",
    "latency_ms_sum": "sum(latency_ms)",
    "ttft_ms_sum": "coalesce(sum(ttft_ms), 0)",
    "ttft_count": "count(ttft_ms)",
    "throughput_sum": "coalesce(sum(throughput), 0)",
    "throughput_count": "count(throughput)",
}
_ATTEMPT_SQL = {
    "attempts": "count(*)",
    "latency_ms_sum": "sum(latency_ms)",
    "ttft_ms_sum": "coalesce(sum(ttft_ms), 0)",
    "ttft_count": "count(ttft_ms)",
}


def _upsert_sql(table: str, keys: Sequence[str], sums: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"


def postgres_ctes(generations_cte: str, attempts_cte: str) -> str:
    """Two more CTEs for the ledger batch statement, reading the rows it inserted."""
    sums = ", ".join(_STATS_SQL[c] for c in STATS_SUMS)
    dimensions = [
        ("'provider'", "model", "coalesce(provider, '')"),
        ("'key'", "''", "coalesce(api_key_id, '')"),
        ("'app'", "''", _APP),
    ]
    selects = "\n        UNION ALL\n        ".join(
        f"SELECT '{size}', {dim}, date_trunc('{size}', created_at, 'UTC'), {model}, {name}, "
        f"{sums} FROM {generations_cte} GROUP BY 1, 2, 3, 4, 5"
        for size in SIZES
        for dim, model, name in dimensions
    )
    attempt_sums = ", ".join(_ATTEMPT_SQL[c] for c in ATTEMPT_SUMS)
    return f"""stats_rows AS (
    INSERT INTO stats_rollup ({", ".join([*STATS_KEYS, *STATS_SUMS])})
    SELECT * FROM (
        {selects}
    ) AS s ORDER BY 1, 2, 3, 4, 5
    {_upsert_sql("stats_rollup", STATS_KEYS, STATS_SUMS)}
), attempt_stats_rows AS (
    INSERT INTO attempt_stats_hourly ({", ".join([*ATTEMPT_KEYS, *ATTEMPT_SUMS])})
    SELECT {_HOUR}, endpoint_id, provider, outcome, coalesce(error_class, ''), {attempt_sums}
    FROM {attempts_cte} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    {_upsert_sql("attempt_stats_hourly", ATTEMPT_KEYS, ATTEMPT_SUMS)}
)"""


# -- the same sums in Python (SQLite, the embedded default)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _generation_sums(g: dict[str, Any]) -> dict[str, Any]:
    ttft, throughput = g["ttft_ms"], g["throughput"]
    return {
        "requests": 1,
        "errors": int(g["status"] == "error"),
        "prompt_tokens": g["prompt_tokens"],
        "completion_tokens": g["completion_tokens"],
        "cached_tokens": g["cached_tokens"],
        "reasoning_tokens": g["reasoning_tokens"],
        "cost": g["cost"],
        "prompt_cost": g["prompt_cost"],
        "completion_cost": g["completion_cost"],
        "cache_discount": g["cache_discount"],
        "latency_ms_sum": g["latency_ms"],
        "ttft_ms_sum": ttft or 0.0,
        "ttft_count": int(ttft is not None),
        "throughput_sum": throughput or 0.0,
        "throughput_count": int(throughput is not None),
    }


def stats_sums(generations: Iterable[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for g in generations:
        sums = _generation_sums(g)
        app = g["app_title"] or g["app_referer"] or ""
        for size, start in (("hour", _hour(g["created_at"])), ("day", _day(g["created_at"]))):
            for key in (
                (size, "provider", start, g["model"], g["provider"] or ""),
                (size, "key", start, "", g["api_key_id"] or ""),
                (size, "app", start, "", app),
            ):
                _add(totals, key, sums)
    return totals


def attempt_rollup(attempts: Iterable[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for a in attempts:
        key = (
            _hour(a["created_at"]),
            a["endpoint_id"],
            a["provider"],
            a["outcome"],
            a["error_class"] or "",
        )
        ttft = a["ttft_ms"]
        sums = {
            "attempts": 1,
            "latency_ms_sum": a["latency_ms"],
            "ttft_ms_sum": ttft or 0.0,
            "ttft_count": int(ttft is not None),
        }
        _add(totals, key, sums)
    return totals


def _add(totals: dict[tuple[Any, ...], dict[str, Any]], key: Any, sums: dict[str, Any]) -> None:
    found = totals.get(key)
    if found is None:
        totals[key] = dict(sums)
        return
    for name, value in sums.items():
        found[name] += value


async def _merge_upsert(
    conn: AsyncConnection,
    table: Table,
    keys: Sequence[str],
    totals: dict[tuple[Any, ...], dict[str, Any]],
) -> None:
    """SQLite would add decimal TEXT as REAL: add to the stored row in Python, then overwrite."""
    if not totals:
        return
    wanted: list[Any] = list(totals)
    columns = [table.c[c] for c in keys]
    existing = await conn.execute(table.select().where(tuple_(*columns).in_(wanted)))
    for row in existing.mappings():
        key = tuple(row[c] for c in keys)
        sums = totals.get(key)
        if sums is not None:
            for name in sums:
                sums[name] += row[name]
    upsert = insert(table)
    statement = upsert.on_conflict_do_update(
        index_elements=list(keys), set_={c: upsert.excluded[c] for c in totals[wanted[0]]}
    )
    rows = [dict(zip(keys, key, strict=True)) | sums for key, sums in sorted(totals.items())]
    await conn.execute(statement, rows)


async def write_portable(
    conn: AsyncConnection,
    generations: Sequence[dict[str, Any]],
    attempts: Sequence[dict[str, Any]],
) -> None:
    """Add newly inserted generations and attempts to the stats rollups (SQLite)."""
    await _merge_upsert(conn, stats_rollup, STATS_KEYS, stats_sums(generations))
    await _merge_upsert(conn, attempt_stats_hourly, ATTEMPT_KEYS, attempt_rollup(attempts))
