"""A ledger batch on Postgres as one statement: generations and attempts go in as JSON
(`json_populate_recordset`); the rollup adds only the generations that statement inserted.

Runs on the asyncpg connection under SQLAlchemy's pool: no per-row bind processing, one round
trip, one implicit transaction. SQLite takes the portable path in `gateway.ledger.store`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec
from sqlalchemy import Table
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.models import attempts, generations
from gateway.ledger.daily_rollup import DAILY_KEY_COLUMNS
from gateway.ledger.rollup import KEY_COLUMNS
from gateway.ledger.rows import LedgerRows
from gateway.stats.rollups import ATTEMPT_INPUTS_ALL, GENERATION_INPUTS, postgres_ctes

STATEMENT_NAME = "ledger batch (generations, attempts, usage_hourly, usage_daily, stats rollups)"

# The rollup of the inserted generations, in SQL: the same keys and sums, in the same order, as
# `gateway.ledger.rollup` (tests/unit/gateway/ledger/test_postgres_batch.py holds them together).
ROLLUP_KEYS = {
    "hour": "date_trunc('hour', created_at, 'UTC')",  # Postgres 12+
    "api_key_id": "coalesce(api_key_id, '')",
    "model": "model",
    "provider": "coalesce(provider, '')",
    "app": "coalesce(nullif(app_title, ''), nullif(app_referer, ''), '')",  # rows.app_of
}
ROLLUP_SUMS = {
    "requests": "count(*)",
    "errors": "count(*) FILTER (WHERE status = 'error')",
    "cancelled": "count(*) FILTER (WHERE cancelled)",
    "attempts": "sum(attempt_count)",
    "prompt_tokens": "sum(prompt_tokens)",
    "completion_tokens": "sum(completion_tokens)",
    "cached_tokens": "sum(cached_tokens)",
    "cache_write_tokens": "sum(cache_write_tokens)",
    "reasoning_tokens": "sum(reasoning_tokens)",
    "cost": "sum(cost)",  # NUMERIC: exact
    "cache_discount": "sum(cache_discount)",
    "upstream_cost": "coalesce(sum(upstream_cost), 0)",
    "latency_ms_sum": "sum(latency_ms)",
}
# The daily rollup billing reads, likewise held to `gateway.ledger.daily_rollup`.
DAILY_KEYS = {
    "day": "(created_at AT TIME ZONE 'UTC')::date",
    "api_key_id": ROLLUP_KEYS["api_key_id"],
    "app": ROLLUP_KEYS["app"],
    "model": "model",
    "provider": ROLLUP_KEYS["provider"],
    "endpoint_id": "coalesce(endpoint_id, '')",
    "price_version": "coalesce(price_version, '')",
}
DAILY_SUMS = {
    name: ROLLUP_SUMS[name]
    for name in (
        "requests",
        "errors",
        "cancelled",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost",
        "cache_discount",
    )
}
# What the rollups read of each inserted generation (the statement's RETURNING).
ROLLUP_INPUTS = (
    "created_at",
    "api_key_id",
    "model",
    "provider",
    "endpoint_id",
    "price_version",
    "app_referer",
    "app_title",
    "status",
    "cancelled",
    "attempt_count",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "cache_discount",
    "upstream_cost",
    "latency_ms",
)


def _names(table: Table) -> str:
    return ", ".join(c.name for c in table.columns)


def _upsert(table: str, keys: dict[str, str], sums: dict[str, str], conflict: Sequence[str]) -> str:
    positions = ", ".join(str(n + 1) for n in range(len(keys)))
    # NUMERIC + NUMERIC is exact; rows go in key order, a fixed lock order across writers.
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    return f"""INSERT INTO {table} ({", ".join([*keys, *sums])})
    SELECT {", ".join(keys.values())}, {", ".join(sums.values())} FROM inserted
    GROUP BY {positions} ORDER BY {positions}
    ON CONFLICT ({", ".join(conflict)}) DO UPDATE SET {updates}"""


def batch_statement() -> str:
    return f"""
WITH inserted AS (
    INSERT INTO generations ({_names(generations)})
    SELECT {_names(generations)} FROM json_populate_recordset(NULL::generations, $1::json)
    ON CONFLICT (id, created_at) DO NOTHING
    RETURNING id, {", ".join([*ROLLUP_INPUTS, *GENERATION_INPUTS])}
), attempt_rows AS (
    INSERT INTO attempts ({_names(attempts)})
    SELECT {", ".join(f"a.{c.name}" for c in attempts.columns)}
    FROM json_populate_recordset(NULL::attempts, $2::json) AS a
    JOIN inserted ON inserted.id = a.generation_id AND inserted.created_at = a.created_at
    ON CONFLICT DO NOTHING
    RETURNING {", ".join(ATTEMPT_INPUTS_ALL)}
), rollup_rows AS (
    {_upsert("usage_hourly", ROLLUP_KEYS, ROLLUP_SUMS, KEY_COLUMNS)}
), daily_rows AS (
    {_upsert("usage_daily", DAILY_KEYS, DAILY_SUMS, DAILY_KEY_COLUMNS)}
), {postgres_ctes("inserted", "attempt_rows")}
SELECT count(*) FROM inserted
"""


STATEMENT = batch_statement()
# Decimal as a JSON string, parsed by NUMERIC's own input: exact. Datetimes as RFC 3339 UTC.
_encoder = msgspec.json.Encoder(decimal_format="string")


def arguments(batch: Sequence[LedgerRows]) -> tuple[str, str]:
    """The statement's parameters: the generations rows, then the attempts rows, as JSON."""
    generation_rows = [rows.generation for rows in batch]
    attempt_rows = [attempt for rows in batch for attempt in rows.attempts]
    return _encoder.encode(generation_rows).decode(), _encoder.encode(attempt_rows).decode()


# SQLSTATE classes that say nothing about the rows: the connection or the server (lost
# connection, shutdown, out of disk or memory, I/O, deadlock, a lock or object busy). Anything
# else (data exception, constraint, "index row size exceeds maximum", ...) is the rows' fault.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


def _translated(exc: Exception) -> DBAPIError:
    """asyncpg's error as the SQLAlchemy class the writer sorts by: `OperationalError` for
    the transient (retried), a data or integrity error for the rows' own (bisected)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(STATEMENT_NAME, None, exc)
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", None) or "")
        if state[:2] not in TRANSIENT_SQLSTATE_CLASSES:
            return DataError(STATEMENT_NAME, None, exc)
    return OperationalError(STATEMENT_NAME, None, exc)


async def write_batch(conn: AsyncConnection, batch: Sequence[LedgerRows]) -> int:
    """Store `batch` (ids unique within it); return how many generations were new."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # asyncpg.Connection
    try:
        inserted: int = await driver.fetchval(STATEMENT, *arguments(batch))
    except asyncpg.PostgresError as exc:  # the server refused the statement: the connection is fine
        raise _translated(exc) from exc
    except (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
        driver.terminate()  # cut off mid-statement: the pool replaces it, never reuses it
        raise _translated(exc) from exc
    except asyncio.CancelledError:  # the writer's timeout, or shutdown: the same
        driver.terminate()
        raise
    return inserted
