"""`gateway serve` killed with SIGKILL mid-burst (every process of it: server, worker and ledger
writer), then started again: every answered generation is in Postgres exactly once (entries of
the dead writer are claimed and replayed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.models import generations, usage_hourly
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.integration.ledger_fixtures import (
    GatewayProcess,
    chat,
    clean_env,
    drop_redis_keys,
    poll,
    wait_for_ids,
)
from tests.support.gateway import write_catalog

BURST = 200
CONCURRENCY = 16
KILL_AFTER = 80  # answered requests before the SIGKILL
AFTER_RESTART = 20


async def test_gateway_killed_mid_burst_loses_and_doubles_nothing(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=8, ttft_ms=10, ttft_jitter_ms=5)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    env = clean_env(
        DATABASE_URL=pg_database,
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        GATEWAY_CATALOG=str(catalog),
        GATEWAY_LEDGER_BATCH_SIZE="8",
        GATEWAY_LEDGER_FLUSH_INTERVAL_S="0.02",
        GATEWAY_LEDGER_CLAIM_IDLE_S="1",
    )
    engine = create_async_engine(pg_database)
    redis = Redis.from_url(redis_url)
    first = GatewayProcess(tmp_path, env)
    second: GatewayProcess | None = None
    answered: list[str] = []
    try:
        await first.ready()  # `serve` migrated the fresh database itself
        killed = asyncio.Event()
        slots = asyncio.Semaphore(CONCURRENCY)

        async def kill_holding_entries() -> None:
            """SIGKILL while the writer holds read-but-unacked entries, when we can catch it."""
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                try:
                    pending = await redis.xpending(f"{redis_prefix}ledger:events", "ledger-writers")
                except ResponseError:  # NOGROUP: the writer has not read yet
                    pending = {"pending": 0}
                if pending["pending"]:
                    break
                await asyncio.sleep(0.002)
            first.crash()

        async with httpx.AsyncClient(timeout=30) as client:

            async def one(n: int) -> None:
                if killed.is_set():
                    return
                async with slots:
                    try:
                        answer = await client.post(
                            f"{first.url}/v1/chat/completions", json=chat(f"request {n}")
                        )
                    except httpx.TransportError:
                        return  # cut off by the kill: never answered
                if answer.status_code == 200:
                    answered.append(answer.json()["id"])
                if len(answered) >= KILL_AFTER and not killed.is_set():
                    killed.set()
                    await kill_holding_entries()

            await asyncio.gather(*(one(n) for n in range(BURST)))
            assert killed.is_set()
            assert first.proc.returncode == -9

            second = GatewayProcess(tmp_path, env)
            await second.ready()
            for n in range(AFTER_RESTART):
                answer = await client.post(f"{second.url}/v1/chat/completions", json=chat(f"{n}"))
                assert answer.status_code == 200, answer.text
                answered.append(answer.json()["id"])

            await wait_for_ids(engine, answered, timeout_s=60)

            async def drained() -> bool:
                status = await client.get(f"{second.url}/api/v1/ledger/status")
                return status.json()["queue_depth"] == 0

            await poll(drained, timeout_s=30, what="an empty ledger stream")

        async with engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(generations))
            distinct = await conn.scalar(select(func.count(func.distinct(generations.c.id))))
            ids = set((await conn.scalars(select(generations.c.id))).all())
            requests = await conn.scalar(select(func.sum(usage_hourly.c.requests)))
        assert set(answered) <= ids  # every answered generation is recorded...
        assert total == distinct  # ...exactly once
        assert requests == total  # and the rollup counted each once
        assert len(answered) >= KILL_AFTER + AFTER_RESTART
    finally:
        await redis.aclose()
        for process in (first, second):
            if process is not None and process.proc.poll() is None:
                process.terminate()
        await engine.dispose()
        await fleet.close()
        await drop_redis_keys(redis_url, redis_prefix)
