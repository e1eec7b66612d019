"""Landing a batch of generations in the database idempotently, in one transaction: ids already
stored are skipped and only rows actually inserted reach the rollup, so replays never count twice.

Postgres runs one statement (`gateway.ledger.postgres_batch`); SQLite, the embedded default,
takes the portable SQLAlchemy path below with the rollup summed in Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import tuple_
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.models import attempts, generations, usage_daily, usage_hourly
from gateway.ledger.daily_rollup import (
    DAILY_KEY_COLUMNS,
    DAILY_SUM_COLUMNS,
    DailyKey,
    DailySums,
    daily_rollup,
    daily_row,
)
from gateway.ledger.postgres_batch import write_batch
from gateway.ledger.rollup import (
    KEY_COLUMNS,
    SUM_COLUMNS,
    RollupKey,
    RollupSums,
    rollup,
    rollup_row,
)
from gateway.ledger.rows import LedgerRows
from gateway.ledger.upkeep import Upkeep
from gateway.stats import rollups as stats_rollups


def _unique(batch: Sequence[LedgerRows]) -> list[LedgerRows]:
    """A batch may hold one event twice (a reclaimed entry next to its original)."""
    seen: dict[str, LedgerRows] = {}
    for rows in batch:
        seen.setdefault(rows.id, rows)
    return list(seen.values())


class LedgerStore:
    def __init__(self, engine: AsyncEngine, upkeep: Upkeep) -> None:
        self._engine = engine
        self._upkeep = upkeep
        self._postgres = engine.dialect.name == "postgresql"

    async def write(self, batch: Sequence[LedgerRows]) -> int:
        """Store the batch; return how many generations were new (the rest were replays)."""
        batch = _unique(batch)
        if not batch:
            return 0
        async with _connection(self._engine) as conn:
            await self._upkeep.ensure({rows.generation["created_at"].date() for rows in batch})
            if self._postgres:
                return await write_batch(conn, batch)
            async with conn.begin():
                return await _write_portable(conn, batch)


@asynccontextmanager
async def _connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection of the pool. Not getting one (refused, the database gone, too many clients,
    bad credentials) is the database's trouble, never the rows': it is raised as an
    `OperationalError`, which the writer retries instead of bisecting the batch."""
    try:
        conn = await engine.connect().start()
    except DBAPIError as exc:
        if isinstance(exc, OperationalError | InterfaceError):
            raise
        raise OperationalError("connect", None, exc.orig or exc) from exc
    try:
        yield conn
    finally:
        await conn.close()


# executemany form, built once: compiled once and cached (`.values(list)` never hits the cache).
_INSERT_GENERATIONS = (
    insert(generations)
    .on_conflict_do_nothing(index_elements=["id", "created_at"])
    .returning(generations.c.id)
)
_INSERT_ATTEMPTS = insert(attempts).on_conflict_do_nothing()
_upsert = insert(usage_hourly)
_UPSERT_ROLLUP = _upsert.on_conflict_do_update(
    index_elements=KEY_COLUMNS, set_={c: _upsert.excluded[c] for c in SUM_COLUMNS}
)
_upsert_daily = insert(usage_daily)
_UPSERT_DAILY = _upsert_daily.on_conflict_do_update(
    index_elements=DAILY_KEY_COLUMNS,
    set_={c: _upsert_daily.excluded[c] for c in DAILY_SUM_COLUMNS},
)


async def _write_portable(conn: AsyncConnection, batch: Sequence[LedgerRows]) -> int:
    result = await conn.execute(_INSERT_GENERATIONS, [rows.generation for rows in batch])
    inserted = set(result.scalars().all())
    new = [rows for rows in batch if rows.id in inserted]
    attempt_rows = [a for rows in new for a in rows.attempts]
    if attempt_rows:
        await conn.execute(_INSERT_ATTEMPTS, attempt_rows)
    totals = rollup(rows.generation for rows in new)
    if totals:
        await _merge_existing(conn, totals)
        await conn.execute(_UPSERT_ROLLUP, [rollup_row(key, sums) for key, sums in totals.items()])
    days = daily_rollup(rows.generation for rows in new)
    if days:
        await _merge_existing_days(conn, days)
        await conn.execute(_UPSERT_DAILY, [daily_row(key, sums) for key, sums in days.items()])
    await stats_rollups.write_portable(conn, [rows.generation for rows in new], attempt_rows)
    return len(new)


async def _merge_existing(conn: AsyncConnection, totals: dict[RollupKey, RollupSums]) -> None:
    """SQLite would add decimal TEXT as REAL: add in Python, then overwrite the row."""
    key_columns = [usage_hourly.c[c] for c in KEY_COLUMNS]
    wanted: list[Any] = [tuple(getattr(key, c) for c in KEY_COLUMNS) for key in totals]
    result = await conn.execute(usage_hourly.select().where(tuple_(*key_columns).in_(wanted)))
    for row in result.mappings():
        key = RollupKey(*(row[c] for c in KEY_COLUMNS))
        totals[key].add(RollupSums(**{c: row[c] for c in SUM_COLUMNS}))


async def _merge_existing_days(conn: AsyncConnection, days: dict[DailyKey, DailySums]) -> None:
    """As `_merge_existing`, for the daily rollup."""
    key_columns = [usage_daily.c[c] for c in DAILY_KEY_COLUMNS]
    wanted: list[Any] = [tuple(getattr(key, c) for c in DAILY_KEY_COLUMNS) for key in days]
    result = await conn.execute(usage_daily.select().where(tuple_(*key_columns).in_(wanted)))
    for row in result.mappings():
        key = DailyKey(*(row[c] for c in DAILY_KEY_COLUMNS))
        days[key].add(DailySums(**{c: row[c] for c in DAILY_SUM_COLUMNS}))
