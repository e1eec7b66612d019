"""The daily rollup on Postgres (one statement) and SQLite (the portable path) equals the
Python rollup of the generations, never counts a replayed batch twice, and the migration
backfills it from the hourly rollup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.db.models import usage_daily
from gateway.ledger.daily_rollup import DAILY_KEY_COLUMNS, daily_rollup, daily_row
from gateway.ledger.migrate import alembic_config, upgrade_engine
from gateway.ledger.rows import rows_of
from gateway.ledger.store import LedgerStore
from gateway.ledger.upkeep import upkeep_for
from providers.pricing import Cost
from providers.usage import Usage
from tests.unit.gateway.ledger.factories import make_event

START = datetime(2026, 9, 30, 22, tzinfo=UTC)


def events() -> list[Any]:
    made = []
    for n in range(60):
        moment = START + timedelta(minutes=7 * n)  # across midnight into October
        made.append(
            make_event(
                n,
                id=f"gen-{int(moment.timestamp())}-{n:08x}",
                created_at=moment,
                api_key_id=None if n % 5 == 0 else f"key-{n % 3}",
                app_title=None if n % 4 == 0 else f"app-{n % 2}",
                provider=None if n % 17 == 0 else ("groq", "local")[n % 2],
                endpoint_id=None if n % 17 == 0 else f"m@{('groq', 'local')[n % 2]}",
                price_version=None if n % 17 == 0 else f"v{n // 30}",
                status="cancelled" if n % 7 == 0 else "ok",
                cancelled=n % 7 == 0,
                usage=Usage(prompt_tokens=100 + n, completion_tokens=n, cached_tokens=n % 3),
                cost=Cost(
                    Decimal(n).scaleb(-12) * 7,
                    Decimal("0.000000000001"),
                    Decimal(0),
                    Decimal(n % 3).scaleb(-12),
                ),
            )
        )
    return made


async def stored(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(usage_daily).order_by(*(usage_daily.c[c] for c in DAILY_KEY_COLUMNS))
        )
        return [dict(row) for row in result.mappings()]


async def check_store(engine: AsyncEngine) -> None:
    made = events()
    store = LedgerStore(engine, upkeep_for(engine, retention_days=3650))
    batches = [made[:25], made[20:45], made[:10], made[45:]]  # overlaps: redelivered entries
    for batch in batches:
        await store.write([rows_of(e) for e in batch])
    expected = [
        daily_row(key, sums)
        for key, sums in daily_rollup(rows_of(e).generation for e in made).items()
    ]
    assert await stored(engine) == expected
    assert sum((r["cost"] for r in expected), Decimal(0)) == sum(
        (e.cost.total for e in made), Decimal(0)
    )
    assert {r["day"].isoformat() for r in expected} == {"2026-09-30", "2026-10-01"}


async def test_daily_rollup_on_postgres_matches_python_and_ignores_replays(
    engine: AsyncEngine,
) -> None:
    await check_store(engine)


async def test_daily_rollup_on_sqlite_matches_python_and_ignores_replays(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        await upgrade_engine(engine)
        await check_store(engine)
    finally:
        await engine.dispose()


HOURLY = [
    # hour, key, model, provider, app, requests, cost, discount
    ("2026-09-30 22:00:00+00", "k1", "m", "groq", "a", 2, "0.000000000001", "0.1"),
    ("2026-09-30 23:00:00+00", "k1", "m", "groq", "a", 3, "0.000000000002", "0.2"),
    ("2026-10-01 00:00:00+00", "k1", "m", "groq", "a", 5, "1.5", "0"),
    ("2026-10-01 01:00:00+00", "", "m", "", "", 1, "0", "0"),
]


def _to_0002(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "0002_api_keys")


@asynccontextmanager
async def at_0002(url: str) -> AsyncIterator[AsyncEngine]:
    """A database at the revision before this one (usage_hourly, no usage_daily)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to_0002)
        yield engine
    finally:
        await engine.dispose()


async def test_the_migration_backfills_days_from_the_hourly_rollup_on_postgres(
    pg_database: str,
) -> None:
    async with at_0002(pg_database) as engine:
        await check_backfill(engine)


async def test_the_migration_backfills_days_from_the_hourly_rollup_on_sqlite(
    tmp_path: Path,
) -> None:
    async with at_0002(f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}") as engine:
        await check_backfill(engine)


async def check_backfill(old_engine: AsyncEngine) -> None:
    sqlite = old_engine.dialect.name == "sqlite"
    async with old_engine.begin() as conn:
        for hour, key, model, provider, app, requests, cost, discount in HOURLY:
            when = hour.replace("+00", "") if sqlite else hour
            await conn.execute(
                text(
                    "INSERT INTO usage_hourly VALUES (:hour, :key, :model, :provider, :app, "
                    ":requests, 0, 0, :requests, 10, 1, 0, 0, 0, :cost, :discount, 0, 1.5)"
                ),
                {
                    "hour": when if sqlite else datetime.fromisoformat(when),
                    "key": key,
                    "model": model,
                    "provider": provider,
                    "app": app,
                    "requests": requests,
                    "cost": cost if sqlite else Decimal(cost),
                    "discount": discount if sqlite else Decimal(discount),
                },
            )
    await upgrade_engine(old_engine)
    rows = await stored(old_engine)
    got = [
        (
            r["day"].isoformat(),
            r["api_key_id"],
            r["endpoint_id"],
            r["price_version"],
            r["requests"],
            r["cost"],
            r["cache_discount"],
        )
        for r in rows
    ]
    assert got == [
        ("2026-09-30", "k1", "m@groq", "", 5, Decimal("0.000000000003"), Decimal("0.3")),
        ("2026-10-01", "", "", "", 1, Decimal(0), Decimal(0)),
        ("2026-10-01", "k1", "m@groq", "", 5, Decimal("1.5"), Decimal(0)),
    ]
