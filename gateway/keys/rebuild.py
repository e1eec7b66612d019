"""Rebuilding the in-process limiter's spend counters from the ledger when a gateway without
Redis starts, so a restart doesn't give every key a fresh limit. Reads the hourly rollup (exact
sums, one row per key and hour), at start only; never on the request path."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import usage_hourly
from gateway.keys.periods import periods_at
from gateway.keys.pico import to_pico


async def spend_from_ledger(engine: AsyncEngine, now: datetime) -> dict[tuple[str, str], int]:
    """Settled spend in pico-USD per (key id, counter): total, this day, week and month (UTC),
    as `InProcessLimiter` counts it."""
    periods = periods_at(now)
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = (
        ("total", None),
        (periods.of("daily"), day),
        (periods.of("weekly"), day - timedelta(days=day.weekday())),
        (periods.of("monthly"), day.replace(day=1)),
    )
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    query = select(usage_hourly.c.hour, usage_hourly.c.api_key_id, usage_hourly.c.cost)
    async with engine.connect() as conn:
        result = await conn.stream(query)
        async for hour, key_id, cost in result:
            if not key_id or not cost:
                continue
            for counter, start in starts:
                if start is None or hour >= start:
                    sums[(key_id, counter)] += Decimal(cost)
    return {counter: to_pico(total) for counter, total in sums.items()}
