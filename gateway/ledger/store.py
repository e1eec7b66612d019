"""Landing a batch of generations in the database idempotently, in one transaction: ids already
stored are skipped and only rows actually inserted reach the rollup, so replays never count twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db.models import attempts, generations, usage_hourly
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
        await self._upkeep.ensure({rows.generation["created_at"].date() for rows in batch})
        async with self._engine.begin() as conn:
            inserted = await self._insert_generations(conn, [r.generation for r in batch])
            new = [rows for rows in batch if rows.id in inserted]
            attempt_rows = [a for rows in new for a in rows.attempts]
            if attempt_rows:
                await conn.execute(self._insert(attempts).on_conflict_do_nothing(), attempt_rows)
            totals = rollup(rows.generation for rows in new)
            if totals:
                await self._add_rollup(conn, totals)
        return len(new)

    def _insert(self, table: Any) -> Any:
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

    async def _insert_generations(
        self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]
    ) -> set[str]:
        # executemany form: compiled once and cached; SQLAlchemy's "insertmanyvalues" batches the
        # rows into multi-row INSERTs within the driver's parameter limit. `.values(list)` was
        # recompiled for every batch (~1-2 ms of CPU per generation, benchmarks/NOTES.md).
        statement = (
            self._insert(generations)
            .on_conflict_do_nothing(index_elements=["id", "created_at"])
            .returning(generations.c.id)
        )
        return set((await conn.execute(statement, list(rows))).scalars().all())

    async def _add_rollup(self, conn: AsyncConnection, totals: dict[RollupKey, RollupSums]) -> None:
        if not self._postgres:
            await self._merge_existing(conn, totals)
        statement = self._insert(usage_hourly)
        if self._postgres:
            # NUMERIC + NUMERIC in Postgres is exact; rows arrive in key order (no deadlocks).
            updates = {c: usage_hourly.c[c] + statement.excluded[c] for c in SUM_COLUMNS}
        else:
            updates = {c: statement.excluded[c] for c in SUM_COLUMNS}
        await conn.execute(
            statement.on_conflict_do_update(index_elements=KEY_COLUMNS, set_=updates),
            [rollup_row(key, sums) for key, sums in totals.items()],
        )

    @staticmethod
    async def _merge_existing(conn: AsyncConnection, totals: dict[RollupKey, RollupSums]) -> None:
        """SQLite would add decimal TEXT as REAL: add in Python, then overwrite the row."""
        key_columns = [usage_hourly.c[c] for c in KEY_COLUMNS]
        wanted = [tuple(getattr(key, c) for c in KEY_COLUMNS) for key in totals]
        result = await conn.execute(usage_hourly.select().where(tuple_(*key_columns).in_(wanted)))
        for row in result.mappings():
            key = RollupKey(*(row[c] for c in KEY_COLUMNS))
            totals[key].add(RollupSums(**{c: row[c] for c in SUM_COLUMNS}))
