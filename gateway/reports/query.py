"""Summing the daily rollup (`usage_daily`) over a period, grouped as a report asks, exactly.

Postgres sums in SQL (NUMERIC is exact); SQLite keeps money as decimal text, so its rows are
summed here with Decimal. Never reads `generations`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.keys import api_keys
from gateway.db.models import price_versions, usage_daily
from gateway.ledger.daily_rollup import DAILY_SUM_COLUMNS, DailySums
from gateway.reports.periods import Period

# Report group names (the API's and CLI's `group_by`) and the rollup column each reads.
GROUPS = ("key", "app", "model", "provider", "day", "month")
EXTRA_GROUPS = ("price_version", "endpoint_id")  # added by the report, not asked for
_COLUMN = {
    "key": "api_key_id",
    "app": "app",
    "model": "model",
    "provider": "provider",
    "price_version": "price_version",
    "endpoint_id": "endpoint_id",
    "day": "day",
    "month": "day",
}
ALL_KEYS = None  # a scope that reads every key (the admin token)
MONEY_SUMS = frozenset({"cost", "cache_discount"})
REPORT_WORK_MEM = "64MB"  # Postgres memory one report query may use to group the rollup


@dataclass(frozen=True, slots=True)
class ReportQuery:
    period: Period
    groups: tuple[str, ...]  # in output order, from GROUPS and EXTRA_GROUPS
    api_key_id: str | None = ALL_KEYS  # the one key whose rows are read


@dataclass(slots=True)
class ReportRow:
    group: dict[str, Any]  # group name -> value (None for "none")
    sums: DailySums


def with_price_versions(groups: Sequence[str]) -> tuple[str, ...]:
    """The groups a billing report runs with: a line per price version wherever a line is one
    provider's (prices belong to an endpoint), so a price change never merges two prices."""
    names = tuple(dict.fromkeys(groups))
    if "provider" in names and "price_version" not in names:
        names = (*names, "price_version")
    return names


def _month(day: date) -> date:
    return day.replace(day=1)


def _value(name: str, raw: Any) -> Any:
    if name == "month":
        return _month(raw if isinstance(raw, date) else date.fromisoformat(str(raw)))
    if name == "day":
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw))
    return raw or None  # "" in a rollup key column means none


# Postgres: the grouping as SQL, run on the asyncpg connection itself (SQLAlchemy's row and type
# processing cost 2-3x the query on a 15,000-line report; asyncpg already returns int/Decimal).
_PG_GROUP = {
    "key": "api_key_id",
    "app": "app",
    "model": "model",
    "provider": "provider",
    "price_version": "price_version",
    "endpoint_id": "endpoint_id",
    "day": "day",
    "month": "date_trunc('month', day)::date",
}
_PG_SUMS = ", ".join(
    f"sum({c})" if c in ("cost", "cache_discount") else f"sum({c})::bigint"
    for c in DAILY_SUM_COLUMNS
)


def postgres_statement(query: ReportQuery) -> tuple[str, list[Any]]:
    groups = [_PG_GROUP[name] for name in query.groups]  # names checked: no user text in SQL
    params: list[Any] = [query.period.start, query.period.end]
    where = "day >= $1 AND day < $2"
    if query.api_key_id is not ALL_KEYS:
        params.append(query.api_key_id)
        where += " AND api_key_id = $3"
    select_list = ", ".join([*groups, _PG_SUMS])
    sql = f"SELECT {select_list} FROM usage_daily WHERE {where}"
    if groups:
        positions = ", ".join(str(n + 1) for n in range(len(groups)))
        sql += f" GROUP BY {positions} ORDER BY {positions}"
    return sql, params


async def _postgres_rows(engine: AsyncEngine, query: ReportQuery) -> list[Any]:
    sql, params = postgres_statement(query)
    async with engine.connect() as conn:
        # In memory: hashing the groups beats sorting them on disk (2x on 186,000 rows).
        await conn.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg.Connection, in the same transaction
        rows: list[Any] = await driver.fetch(sql, *params)
        return rows


async def run_report(engine: AsyncEngine, query: ReportQuery) -> list[ReportRow]:
    """One row per group, sorted by the group values; sums exact."""
    names, width = query.groups, len(query.groups)
    totals: dict[tuple[Any, ...], DailySums] = {}
    if engine.dialect.name == "postgresql":  # one row per group, exact numbers already
        for row in await _postgres_rows(engine, query):
            totals[tuple(row[:width])] = DailySums(*(_exact(v) for v in row[width:]))
    else:  # SQLite keeps money as decimal text: summed here, in group order
        groups = [usage_daily.c[_COLUMN[name]].label(name) for name in names]
        where = [usage_daily.c.day >= query.period.start, usage_daily.c.day < query.period.end]
        if query.api_key_id is not ALL_KEYS:
            where.append(usage_daily.c.api_key_id == query.api_key_id)
        columns = (usage_daily.c[c] for c in DAILY_SUM_COLUMNS)
        statement = select(*groups, *columns).where(*where).order_by(*groups)
        async with engine.connect() as conn:
            for row in await conn.execute(statement):
                sums = DailySums(*(_exact(v) for v in row[width:]))
                key = tuple(_value(n, raw) for n, raw in zip(names, row, strict=False))
                found = totals.get(key)
                if found is None:
                    totals[key] = sums
                else:
                    found.add(sums)
    if not names and next(iter(totals.values()), DailySums()).requests == 0:
        return []  # Postgres' sums over no rows
    return [
        ReportRow({name: _value(name, raw) for name, raw in zip(names, key, strict=True)}, sums)
        for key, sums in totals.items()
    ]


def _exact(value: Any) -> Any:
    """A summed value as an exact number (None: Postgres' sum over no rows)."""
    if value is None:
        return 0
    if value.__class__ is int or value.__class__ is Decimal:
        return value
    return Decimal(str(value))  # decimal text


def total_of(rows: Sequence[ReportRow]) -> DailySums:
    """The totals line: the exact sum of the rows shown."""
    total = DailySums()
    for row in rows:
        total.add(row.sums)
    return total


async def key_names(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, str]:
    """Names of the keys in `ids` (deleted keys too: their usage still bills)."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    async with engine.connect() as conn:
        result = await conn.execute(
            select(api_keys.c.id, api_keys.c.name).where(api_keys.c.id.in_(wanted))
        )
        return {row.id: row.name for row in result}


async def unit_prices_of(engine: AsyncEngine, versions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The registered unit prices of each price version in `versions`."""
    wanted = sorted({v for v in versions if v})
    if not wanted:
        return {}
    async with engine.connect() as conn:
        result = await conn.execute(
            select(price_versions).where(price_versions.c.price_version.in_(wanted))
        )
        return {row["price_version"]: dict(row) for row in result.mappings()}
