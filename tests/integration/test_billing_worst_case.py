"""The worst case is a bound: a key with a tiny limit, requests that send both cap aliases and
`n`, an upstream that reads `max_tokens` first. Spend stays within the limit plus one worst case,
and the one cap the upstream sees is the one the hold was priced from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import generations
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.keys_fixtures import (
    bearer,
    chat,
    create_key,
    key_settings,
    poll,
    redis_client,
)
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

# Reads `max_tokens` first (like llama.cpp) and would write 4,000 tokens when let.
LONG = Profile(completion_tokens=4000, cap_alias="max_tokens")


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"long": LONG})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
async def gateway(
    fleet: Fleet,
    engine: AsyncEngine,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[RunningGateway]:
    catalog = write_catalog(tmp_path / "catalog.toml", {"long": fleet.url_for("long")})
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    async with redis_client(redis_url, redis_prefix), run_gateway(settings) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


async def test_an_alias_and_n_burst_stays_within_the_limit_plus_one_worst_case(
    client: httpx.AsyncClient, engine: AsyncEngine, fleet: Fleet
) -> None:
    limit = Decimal("0.00001")
    key_id, secret = await create_key(client, name="alias", limit=str(limit))
    alone = chat(max_tokens=20000)
    refused = await client.post("/v1/chat/completions", json=alone, headers=bearer(secret))
    assert refused.status_code == 402
    sneaky = chat(max_tokens=20000, max_completion_tokens=1, n=4, n_predict=20000, ignore_eos=True)
    worst = Decimal(0)
    served = 0
    for _ in range(50):  # bursts until one admits nothing: the limit is spent
        answers = await asyncio.gather(
            *(
                client.post("/v1/chat/completions", json=sneaky, headers=bearer(secret))
                for _ in range(10)
            )
        )
        assert {a.status_code for a in answers} <= {200, 402}
        for answer in answers:
            if answer.status_code == 402:
                worst = max(worst, Decimal(answer.json()["error"]["metadata"]["required"]))
        served += sum(a.status_code == 200 for a in answers)
        if not any(a.status_code == 200 for a in answers):
            break
    else:
        raise AssertionError("the limit was never reached")
    assert served > 0 and worst > 0
    assert fleet.stats()["long"].completion_tokens <= served * 1  # one cap: 1 token each

    async def stored() -> bool:
        async with engine.connect() as conn:
            count = (
                await conn.execute(select(func.count()).where(generations.c.api_key_id == key_id))
            ).scalar_one()
        return count == served

    await poll(stored, timeout_s=20, what="every served generation in the ledger")
    async with engine.connect() as conn:
        spent = (
            await conn.execute(
                select(func.coalesce(func.sum(generations.c.cost), 0)).where(
                    generations.c.api_key_id == key_id
                )
            )
        ).scalar_one()
    assert Decimal(spent) <= limit + worst
