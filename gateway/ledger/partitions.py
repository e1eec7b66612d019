"""Daily partitions of `generations` and `attempts` on Postgres: made ahead, dropped past
retention (a `DROP TABLE`, never a giant DELETE); replicas serialize on one advisory lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("gateway.ledger.partitions")

PARTITIONED_TABLES = ("generations", "attempts")
DAYS_AHEAD = 3  # partitions kept ready beyond today, so midnight never waits on DDL
ADVISORY_LOCK = 0x6C6564676572  # "ledger": serializes partition DDL across replicas
_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<day>\d{8})$")


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_of_partition(table: str, name: str) -> date | None:
    match = _NAME.match(name)
    if match is None or match["table"] != table:
        return None
    return datetime.strptime(match["day"], "%Y%m%d").date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def create_statement(table: str, day: date) -> str:
    lower, upper = day_start(day), day_start(day + timedelta(days=1))
    return (
        f'CREATE TABLE IF NOT EXISTS "{partition_name(table, day)}" PARTITION OF "{table}" '
        f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
    )


def upcoming(today: date, days_ahead: int = DAYS_AHEAD) -> set[date]:
    return {today + timedelta(days=n) for n in range(days_ahead + 1)}


def expired(days: Iterable[date], today: date, retention_days: int) -> set[date]:
    """Days wholly older than the retention window: their partitions can go."""
    first_kept = today - timedelta(days=retention_days)
    return {day for day in days if day < first_kept}


class PostgresPartitions:
    """Creates the partitions a batch needs and keeps the set bounded by retention."""

    def __init__(self, engine: AsyncEngine, retention_days: int) -> None:
        self._engine = engine
        self._retention_days = retention_days
        self._known: set[date] = set()  # days whose partitions exist in every table

    async def ensure(self, days: set[date]) -> None:
        """Make sure each day has its partitions, in a transaction of its own."""
        missing = days - self._known
        if not missing:
            return
        async with self._engine.begin() as conn:
            existing = await self._lock_and_list(conn)
            await self._create(conn, existing, missing)
        self._known |= missing

    async def maintain(self, today: date) -> None:
        """Create the days ahead and drop the days past retention."""
        async with self._engine.begin() as conn:
            existing = await self._lock_and_list(conn)
            await self._create(conn, existing, upcoming(today))
            for table, days in existing.items():
                for day in sorted(expired(days, today, self._retention_days)):
                    await conn.execute(text(f'DROP TABLE IF EXISTS "{partition_name(table, day)}"'))
                    log.info("dropped ledger partition", extra={"table": table, "day": str(day)})
        everywhere = set.intersection(*(days for days in existing.values())) | upcoming(today)
        self._known = everywhere - expired(everywhere, today, self._retention_days)

    async def _lock_and_list(self, conn: AsyncConnection) -> dict[str, set[date]]:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        existing: dict[str, set[date]] = {}
        for table in PARTITIONED_TABLES:
            names = await conn.scalars(
                text(
                    "SELECT c.relname FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent "
                    "WHERE p.relname = :table AND pg_table_is_visible(p.oid)"
                ),
                {"table": table},
            )
            existing[table] = {
                day for name in names if (day := day_of_partition(table, name)) is not None
            }
        return existing

    @staticmethod
    async def _create(
        conn: AsyncConnection, existing: dict[str, set[date]], days: set[date]
    ) -> None:
        for table in PARTITIONED_TABLES:
            for day in sorted(days - existing[table]):
                await conn.execute(text(create_statement(table, day)))
                existing[table].add(day)
                log.info("created ledger partition", extra={"table": table, "day": str(day)})
