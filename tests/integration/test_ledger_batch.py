"""The Postgres batch statement against real Postgres and Redis: it stores what the portable
(SQLite) path stores, counts a redelivered batch once, and sets aside a row Postgres refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.db.models import attempts, generations, usage_hourly
from gateway.ledger.events import GenerationEvent
from gateway.ledger.migrate import upgrade_engine
from gateway.ledger.queue import InProcessLedger
from gateway.ledger.rollup import KEY_COLUMNS
from gateway.ledger.rows import rows_of
from gateway.ledger.store import LedgerStore
from gateway.ledger.stream import RedisStreamLedger
from gateway.ledger.upkeep import upkeep_for
from gateway.ledger.writer import LedgerWriter
from gateway.resp import RespClient
from providers.pricing import Cost
from providers.usage import Usage
from routing.executor import Attempt

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def _event(n: int, **fields: Any) -> GenerationEvent:
    """Varied on every field the rollup keys or sums on."""
    created = START + timedelta(minutes=17 * n, microseconds=n)
    values: dict[str, Any] = {
        "id": f"gen-1700000000-b{n:04d}",
        "created_at": created,
        "requested_model": "openai/gpt-oss-20b",
        "model": "openai/gpt-oss-20b" if n % 5 else "openai/gpt-oss-120b",
        "mode": "balanced",
        "streamed": bool(n % 2),
        "api_key_id": None if n % 4 == 0 else f"key-{n % 3}",
        "app_referer": ["https://a.example", None, "", "https://b.example"][n % 4],
        "app_title": [None, "Title", "", None, "Other"][n % 5],
        "provider": None if n % 11 == 0 else ["groq", "together"][n % 2],
        "endpoint_id": "openai/gpt-oss-20b@groq",
        "status": ["ok", "error", "cancelled", "ok"][n % 4],
        "http_status": [200, 502, 499, 200][n % 4],
        "error_message": "upstream said no" if n % 4 == 1 else None,
        "cancelled": n % 4 == 2,
        "usage": Usage(
            prompt_tokens=100 + n, completion_tokens=7 * n, cached_tokens=n, reasoning_tokens=n // 2
        ),
        "cost": Cost(
            Decimal(n) * Decimal("0.000000123457"),
            Decimal("0.000001") + Decimal(n).scaleb(-12),
            Decimal("0.0001") if n % 6 == 0 else Decimal(0),
            Decimal("0.000000000001") * n,
        ),
        "upstream_cost": None if n % 3 else Decimal("0.00042") + Decimal(n).scaleb(-12),
        "latency_s": 0.1 + n / 1000,
        "ttft_s": None if n % 7 == 0 else 0.05 + n / 10000,
        "generation_s": 0.3 if n % 2 else None,
        "attempts": [
            Attempt("openai/gpt-oss-20b@groq", "groq", created + timedelta(seconds=seq), 0.2, None)
            for seq in range(1 + n % 3)
        ],
        "explanation": {"mode": "balanced", "scores": {"groq": "0.5"}} if n % 8 == 0 else None,
    }
    values.update(fields)
    return GenerationEvent(**values)


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    await upgrade_engine(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _table(engine: AsyncEngine, table: Any, order: list[str]) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(table).order_by(*(table.c[c] for c in order)))
        return [dict(row) for row in result.mappings()]


async def test_postgres_stores_what_the_portable_path_stores(
    engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> None:
    events = [_event(n) for n in range(48)]
    for target in (engine, sqlite_engine):
        store = LedgerStore(target, upkeep_for(target, 90))
        assert await store.write([rows_of(e) for e in events[:30]]) == 30
        # A replayed batch with new events in it: only the new ones count.
        assert await store.write([rows_of(e) for e in events[20:]]) == 18
    for table, order in (
        (generations, ["id"]),
        (attempts, ["generation_id", "seq"]),
        (usage_hourly, list(KEY_COLUMNS)),
    ):
        on_postgres = await _table(engine, table, order)
        on_sqlite = await _table(sqlite_engine, table, order)
        assert len(on_postgres) == len(on_sqlite) > 0
        for pg_row, sqlite_row in zip(on_postgres, on_sqlite, strict=True):
            if table is usage_hourly:  # a float sum may differ in the last bit by order
                assert pg_row.pop("latency_ms_sum") == pytest.approx(
                    sqlite_row.pop("latency_ms_sum")
                )
            assert pg_row == sqlite_row  # Decimal compares exactly; times are aware UTC
    assert sum(r["requests"] for r in on_postgres) == 48
    total = sum((r["cost"] for r in await _table(engine, usage_hourly, ["hour"])), Decimal(0))
    assert total == sum((e.cost.total for e in events), Decimal(0))


async def test_redelivery_after_commit_before_ack_counts_once(
    engine: AsyncEngine, redis_url: str, redis_prefix: str
) -> None:
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    store = LedgerStore(engine, upkeep_for(engine, 90))
    try:
        crashed = RedisStreamLedger(
            redis, redis_prefix, claim_idle_s=0.05, resp=resp, consumer="crashed"
        )
        events = [_event(n) for n in range(10)]
        for event in events:
            await crashed.emit(event)
        taken = await crashed.read(10, 0)
        # Committed, then the process died before XACK: the entries are still pending.
        assert await store.write([rows_of(e.event) for e in taken]) == 10

        survivor = RedisStreamLedger(
            redis, redis_prefix, claim_idle_s=0.05, resp=resp, consumer="survivor"
        )
        writer = LedgerWriter(
            survivor, store, batch_size=100, flush_interval_s=0.01, drain_timeout_s=1
        )
        redelivered = 0
        for _ in range(100):
            if await writer.step(0.05):
                redelivered = writer.counters.replayed_total
                if redelivered == 10:
                    break
        assert redelivered == 10 and writer.counters.written_total == 0
        assert await survivor.depth() == 0  # acked this time
    finally:
        await redis.delete(f"{redis_prefix}ledger:events", f"{redis_prefix}ledger:dead")
        await redis.aclose()
        await resp.aclose()
    async with engine.connect() as conn:
        stored = await conn.scalar(select(func.count()).select_from(generations))
        requests = await conn.scalar(select(func.sum(usage_hourly.c.requests)))
        cost = await conn.scalar(select(func.sum(usage_hourly.c.cost)))
    assert stored == requests == 10
    assert cost == sum((e.cost.total for e in events), Decimal(0))


POISON_TRIGGER = """
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.app_title = 'poison' THEN
        RAISE EXCEPTION 'index row size exceeds btree maximum' USING ERRCODE = '54000';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON generations
    FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


async def test_a_row_postgres_refuses_is_set_aside_and_the_rest_stored(
    engine: AsyncEngine,
) -> None:
    queue = InProcessLedger()
    writer = LedgerWriter(
        queue,
        LedgerStore(engine, upkeep_for(engine, 90)),
        batch_size=100,
        flush_interval_s=0.01,
        drain_timeout_s=1,
    )
    async with engine.begin() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(POISON_TRIGGER)  # type: ignore[union-attr]
    for n in range(6):
        # The trigger refuses "poison" as Postgres refuses an oversized index row (SQLSTATE
        # 54000); NUL, which Postgres text can't hold, is dropped before it gets there.
        title = "poison" if n == 3 else ("nul\x00title" if n == 4 else None)
        await queue.emit(_event(n, app_title=title))
    await queue.emit(_event(6, error_message="upstream\x00 said no"))
    assert await writer.step(0) is True
    assert writer.counters.dead_letters_total == 1 and writer.counters.written_total == 6
    assert await queue.depth() == 0
    async with engine.connect() as conn:
        ids = set((await conn.scalars(select(generations.c.id))).all())
        requests = await conn.scalar(select(func.sum(usage_hourly.c.requests)))
        message = await conn.scalar(
            select(generations.c.error_message).where(generations.c.id == "gen-1700000000-b0006")
        )
    assert ids == {f"gen-1700000000-b{n:04d}" for n in (0, 1, 2, 4, 5, 6)} and requests == 6
    assert message == "upstream said no"
    async with engine.connect() as conn:
        title = await conn.scalar(
            select(generations.c.app_title).where(generations.c.id == "gen-1700000000-b0004")
        )
    assert title == "nultitle"
