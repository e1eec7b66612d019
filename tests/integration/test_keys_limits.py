"""Spend and rate limits through a real gateway on Postgres and Redis: a 100-way burst never
overshoots, 429s say when to come back, and holds of dead requests are released."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Sequence
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
    decimal_json,
    key_settings,
    poll,
    redis_client,
)
from tests.support.gateway import RunningGateway, run_gateway, write_catalog


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(
        {
            "alpha": Profile(completion_tokens=12),
            "slow": Profile(completion_tokens=40, tokens_per_s=20),
            "down": Profile(down=True),
        }
    )
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
    catalog = write_catalog(
        tmp_path / "catalog.toml",
        {name: fleet.url_for(name) for name in ("alpha", "slow", "down")},
    )
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    async with redis_client(redis_url, redis_prefix), run_gateway(settings) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, limits=limits) as client:
        yield client


def only(provider: str, **extra) -> dict:
    return chat(provider={"only": [provider]}, **extra)


async def ledger_spend(engine: AsyncEngine, key_id: str) -> tuple[int, Decimal]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.coalesce(func.sum(generations.c.cost), 0)).where(
                    generations.c.api_key_id == key_id
                )
            )
        ).one()
    return int(row[0]), Decimal(row[1])


async def burst_to_the_limit(
    client: httpx.AsyncClient, urls: Sequence[str], secret: str, body: dict
) -> tuple[list[int], Decimal]:
    """100-way bursts, spread over the gateways at `urls` in turn, until one admits nothing:
    the answers served by each, and the largest worst case a 402 named."""
    served, worst = [0] * len(urls), Decimal(0)
    for _ in range(20):
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{urls[n % len(urls)]}/v1/chat/completions", json=body, headers=bearer(secret)
                )
                for n in range(100)
            )
        )
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 402}, statuses
        for refusal in (a for a in answers if a.status_code == 402):
            error = refusal.json()["error"]
            assert error["code"] == 402
            assert error["metadata"]["reason"] == "insufficient_credits"
            worst = max(worst, Decimal(error["metadata"]["required"]))
        for n, status in enumerate(statuses):
            served[n % len(urls)] += status == 200
        if 200 not in statuses:
            return served, worst
    raise AssertionError("the limit was never reached")


async def test_a_100_way_burst_overshoots_the_limit_by_at_most_one_worst_case(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    limit = Decimal("0.00004")
    key_id, secret = await create_key(client, name="burst", limit=str(limit))
    by_url, worst = await burst_to_the_limit(client, [""], secret, only("alpha", max_tokens=12))
    served = sum(by_url)
    assert served > 0 and worst > 0

    async def all_in_ledger() -> bool:
        return (await ledger_spend(engine, key_id))[0] == served

    await poll(all_in_ledger, timeout_s=30, what="every served generation in the ledger")
    _, spent = await ledger_spend(engine, key_id)
    assert spent <= limit + worst
    assert spent > limit - worst  # the last burst was refused: less than one worst case was left
    usage = decimal_json((await client.get("/api/v1/key", headers=bearer(secret))).text)["data"]
    assert usage["usage"] == spent  # the limiter's counter matches the ledger exactly
    assert usage["limit_remaining"] == max(limit - spent, 0)


async def test_rate_limit_answers_429_with_a_retry_after_that_holds(client: httpx.AsyncClient):
    _, secret = await create_key(client, name="rate", requests_per_minute=30)
    body = only("alpha", max_tokens=1)
    answers = await asyncio.gather(
        *(client.post("/v1/chat/completions", json=body, headers=bearer(secret)) for _ in range(30))
    )
    assert [a.status_code for a in answers] == [200] * 30
    refused_at_ms = time.time() * 1000
    refused = await client.post("/v1/chat/completions", json=body, headers=bearer(secret))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == 429 and error["type"] == "rate_limit_error"
    assert error["metadata"]["reason"] == "rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    reset_ms = int(refused.headers["X-RateLimit-Reset"])
    assert refused.headers["X-RateLimit-Limit"] == "30"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= retry_after <= 2  # one request per 2 s once the burst of 30 is spent
    assert retry_after == math.ceil((reset_ms - refused_at_ms) / 1000) or retry_after == math.ceil(
        (reset_ms - refused_at_ms) / 1000 + 0.05
    )

    async def admitted() -> bool:
        answer = await client.post("/v1/chat/completions", json=body, headers=bearer(secret))
        assert answer.status_code in (200, 429)
        return answer.status_code == 200

    await poll(admitted, timeout_s=retry_after + 2, what="the next request after Retry-After")
    admitted_at_ms = time.time() * 1000
    assert admitted_at_ms >= reset_ms - 50  # not before the announced moment (same clock)
    assert admitted_at_ms <= refused_at_ms + retry_after * 1000 + 500


async def test_tokens_per_minute_are_counted_from_real_usage(client: httpx.AsyncClient):
    _, secret = await create_key(client, name="tokens", tokens_per_minute=20)
    body = only("alpha")
    first = await client.post("/v1/chat/completions", json=body, headers=bearer(secret))
    used = first.json()["usage"]["total_tokens"]
    assert 12 < used < 20
    assert (await client.post("/v1/chat/completions", json=body, headers=bearer(secret))).is_success
    refused = await client.post("/v1/chat/completions", json=body, headers=bearer(secret))
    assert refused.status_code == 429 and "tokens" in refused.json()["error"]["message"]
    over = 2 * used - 20  # tokens past the bucket; each takes 3 s to come back
    assert int(refused.headers["Retry-After"]) == math.ceil(over * 3 - 0.5) or int(
        refused.headers["Retry-After"]
    ) == math.ceil(over * 3)


async def test_a_stream_the_client_drops_releases_its_hold(
    client: httpx.AsyncClient, gateway: RunningGateway
):
    # "slow" costs $0.02/M prompt and $0.2/M completion tokens. The prompt's bound is its bytes
    # plus the template's 128: the stream holds ~1.3e-5 of 2e-5, the probe wants ~1.1e-5,
    # which fits only while nothing is held.
    key_id, secret = await create_key(client, name="drop", limit="0.00002")
    probe = only("slow", max_tokens=30)
    async with client.stream(
        "POST",
        "/v1/chat/completions",
        json=only("slow", max_tokens=40, stream=True),
        headers=bearer(secret),
    ) as streaming:
        assert streaming.status_code == 200
        async for _ in streaming.aiter_bytes():
            break  # the stream is running and holds its worst case
        held = await client.post("/v1/chat/completions", json=probe, headers=bearer(secret))
        assert held.status_code == 402
    keys = gateway.resources.keys
    key = keys.cache.get(key_id)
    assert key is not None

    async def released() -> bool:
        return (await keys.limiter.usage(key)).held == 0

    await poll(released, timeout_s=5, what="the dropped stream's hold released")
    assert (
        await client.post("/v1/chat/completions", json=probe, headers=bearer(secret))
    ).is_success


async def test_a_failed_generation_releases_its_hold_and_costs_nothing(
    client: httpx.AsyncClient, gateway: RunningGateway
):
    key_id, secret = await create_key(client, name="fail", limit="0.0001")
    failed = await client.post(
        "/v1/chat/completions", json=only("down", max_tokens=10), headers=bearer(secret)
    )
    assert failed.status_code >= 500
    key = gateway.resources.keys.cache.get(key_id)
    assert key is not None
    usage = await gateway.resources.keys.limiter.usage(key)
    assert (usage.total, usage.held) == (0, 0)
