"""Postgres stopped during a burst of requests and started again: every generation lands once.

Uses a throwaway cluster (initdb + pg_ctl on a free port), never the shared server.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.models import generations, usage_hourly
from gateway.ledger.migrate import upgrade_to_head_async
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.integration.ledger_fixtures import (
    chat,
    decimal_json,
    drop_redis_keys,
    generation_count,
    poll,
    settings_for,
    throwaway_postgres,
)
from tests.support.gateway import run_gateway, write_catalog

BURST = 120
CONCURRENCY = 12
STOP_AFTER = 30  # answered requests before Postgres goes down


async def test_postgres_outage_mid_burst_loses_and_doubles_nothing(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=8, ttft_ms=5)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    with throwaway_postgres(tmp_path) as cluster:
        await upgrade_to_head_async(cluster.url)
        settings = settings_for(
            catalog, cluster.url, redis_url=redis_url, redis_prefix=redis_prefix, batch_size=16
        )
        engine = create_async_engine(cluster.url, pool_pre_ping=True)
        answered: dict[str, Decimal] = {}
        postgres_down = asyncio.Event()
        slots = asyncio.Semaphore(CONCURRENCY)
        try:
            async with run_gateway(settings) as gateway, httpx.AsyncClient(timeout=30) as client:

                async def one(n: int) -> None:
                    async with slots:
                        answer = await client.post(
                            f"{gateway.v1}/chat/completions", json=chat(f"request {n}")
                        )
                    assert answer.status_code == 200, answer.text
                    body = decimal_json(answer.text)
                    answered[body["id"]] = Decimal(body["usage"]["cost"])
                    if len(answered) == STOP_AFTER and not postgres_down.is_set():
                        postgres_down.set()
                        await asyncio.to_thread(cluster.stop)

                await asyncio.gather(*(one(n) for n in range(BURST)))
                assert postgres_down.is_set() and len(answered) == BURST

                status = (await client.get(f"{gateway.url}/api/v1/ledger/status")).json()
                assert status["queue_depth"] > 0  # waiting in the stream, not dropped
                assert status["write_errors_total"] > 0

                await asyncio.to_thread(cluster.start)

                async def all_landed() -> bool:
                    return await generation_count(engine) >= BURST

                await poll(all_landed, timeout_s=60, what="every generation after the restart")

                async def drained() -> bool:
                    answer = await client.get(f"{gateway.url}/api/v1/ledger/status")
                    return answer.json()["queue_depth"] == 0

                await poll(drained, timeout_s=30, what="an empty ledger stream")

            async with engine.connect() as conn:
                total = await conn.scalar(select(func.count()).select_from(generations))
                distinct = await conn.scalar(select(func.count(func.distinct(generations.c.id))))
                ids = set((await conn.scalars(select(generations.c.id))).all())
                requests = await conn.scalar(select(func.sum(usage_hourly.c.requests)))
                billed = await conn.scalar(select(func.sum(usage_hourly.c.cost)))
            assert total == distinct == BURST
            assert ids == set(answered)
            assert requests == BURST
            assert billed == sum(answered.values(), Decimal(0))  # exact, no tolerance
        finally:
            await engine.dispose()
            await fleet.close()
            await drop_redis_keys(redis_url, redis_prefix)
