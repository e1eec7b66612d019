"""Keeping raw ledger tables ready and bounded: the `Upkeep` protocol, its SQLite form (expired
rows deleted in short chunks) and the choice by dialect; Postgres is `gateway.ledger.partitions`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Protocol

from sqlalchemy import delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnClause

from gateway.db.models import attempts, generations
from gateway.ledger.partitions import PostgresPartitions, day_start

SQLITE_DELETE_CHUNK = 5000


class Upkeep(Protocol):
    async def ensure(self, days: set[date]) -> None:
        """Before a batch: whatever rows of these days need must exist."""

    async def maintain(self, today: date) -> None:
        """Periodically: prepare upcoming days, drop rows past retention."""


class SqliteUpkeep:
    def __init__(self, engine: AsyncEngine, retention_days: int) -> None:
        self._engine = engine
        self._retention_days = retention_days

    async def ensure(self, days: set[date]) -> None:
        return None

    async def maintain(self, today: date) -> None:
        cutoff = day_start(today - timedelta(days=self._retention_days))
        for table in (attempts, generations):
            rowid: ColumnClause[int] = literal_column("rowid")
            expired = (
                select(rowid)
                .select_from(table)
                .where(table.c.created_at < cutoff)
                .limit(SQLITE_DELETE_CHUNK)
            )
            while True:
                async with self._engine.begin() as conn:
                    result = await conn.execute(delete(table).where(rowid.in_(expired)))
                if result.rowcount < SQLITE_DELETE_CHUNK:
                    break


def upkeep_for(engine: AsyncEngine, retention_days: int) -> Upkeep:
    if engine.dialect.name == "postgresql":
        return PostgresPartitions(engine, retention_days)
    return SqliteUpkeep(engine, retention_days)
