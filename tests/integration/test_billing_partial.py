"""Partial answers are charged, through a real gateway on Postgres and Redis with a limited key
and simulated upstreams: a client that leaves mid-stream or before the first token, an upstream
that cuts the stream, one that never sends usage, one that sends a running usage on every chunk.
Each is recorded with its tokens and cost, and the key is settled with that cost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import generations
from gateway.keys.pico import to_pico
from providers.simulator.profile import Failures, Profile
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

PACED = Profile(completion_tokens=50, tokens_per_s=100)  # 50 chunks, 10 ms apart
PROVIDERS = {
    "paced": PACED,
    "cut": Profile(completion_tokens=50, failures=Failures(stream_cut=1.0), stream_cut_after=21),
    "silent": Profile(completion_tokens=50, stream_usage="none"),
    "vllm": Profile(completion_tokens=50, stream_usage="continuous"),
    "late": Profile(completion_tokens=50, tokens_per_s=100, ttft_ms=1500),
    "late-cut": Profile(
        completion_tokens=50,
        ttft_ms=800,
        failures=Failures(stream_cut=1.0),
        stream_cut_after=11,
    ),
}


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(PROVIDERS)
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
        tmp_path / "catalog.toml", {name: fleet.url_for(name) for name in PROVIDERS}
    )
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    async with redis_client(redis_url, redis_prefix), run_gateway(settings) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


def streamed(provider: str) -> dict[str, Any]:
    return chat("tell me a story", provider={"only": [provider]}, stream=True, max_tokens=64)


async def generation_of(engine: AsyncEngine, key_id: str) -> Any:
    """The key's one generation, once the ledger writer has stored it."""
    row: Any = None

    async def stored() -> bool:
        nonlocal row
        async with engine.connect() as conn:
            rows = (
                await conn.execute(select(generations).where(generations.c.api_key_id == key_id))
            ).all()
        row = rows[0] if rows else None
        return row is not None

    await poll(stored, timeout_s=15, what="the generation in the ledger")
    return row


async def settled(gateway: RunningGateway, key_id: str) -> tuple[int, int]:
    keys = gateway.resources.keys
    key = keys.cache.get(key_id)
    assert key is not None
    usage = await keys.limiter.usage(key)
    return usage.total, usage.held


async def assert_settled_with(gateway: RunningGateway, key_id: str, cost: Decimal) -> None:
    async def done() -> bool:
        return await settled(gateway, key_id) == (to_pico(cost), 0)

    await poll(done, timeout_s=10, what=f"the key settled at {cost}")


def assert_charged_by(row: Any, provider: str) -> None:
    """A generation that cost something names the endpoint and price version it was charged
    at (billing reports and statements group by them)."""
    assert row.provider == provider and row.endpoint_id and row.price_version
    assert row.model == "openai/gpt-oss-20b"


async def test_a_client_that_leaves_mid_stream_is_charged_for_what_was_relayed(
    client: httpx.AsyncClient, gateway: RunningGateway, engine: AsyncEngine
) -> None:
    key_id, secret = await create_key(client, name="leaver", limit="1")
    read = 0
    async with client.stream(
        "POST", "/v1/chat/completions", json=streamed("paced"), headers=bearer(secret)
    ) as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if '"content"' in line:
                read += 1
            if read >= 40:
                break  # 40 of 50 chunks, then the socket closes
    row = await generation_of(engine, key_id)
    assert row.status == "cancelled" and row.cancelled
    assert 35 <= row.completion_tokens < 60  # o200k count of the text relayed
    assert row.prompt_tokens > 0 and row.cost > 0
    await assert_settled_with(gateway, key_id, row.cost)


async def test_an_upstream_that_cuts_the_stream_is_charged_for_what_was_relayed(
    client: httpx.AsyncClient, gateway: RunningGateway, engine: AsyncEngine
) -> None:
    key_id, secret = await create_key(client, name="cut", limit="1")
    answer = await client.post("/v1/chat/completions", json=streamed("cut"), headers=bearer(secret))
    assert answer.status_code == 200 and '"finish_reason":"error"' in answer.text
    row = await generation_of(engine, key_id)
    assert row.status == "error" and row.finish_reason == "error"
    assert 15 <= row.completion_tokens <= 25  # 20 content chunks of one word each
    assert row.cost > 0
    await assert_settled_with(gateway, key_id, row.cost)


async def test_a_stream_without_usage_is_charged_by_counting_what_was_relayed(
    client: httpx.AsyncClient, gateway: RunningGateway, engine: AsyncEngine
) -> None:
    key_id, secret = await create_key(client, name="silent", limit="1")
    answer = await client.post(
        "/v1/chat/completions", json=streamed("silent"), headers=bearer(secret)
    )
    assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
    row = await generation_of(engine, key_id)
    assert row.status == "ok"
    assert 40 <= row.completion_tokens <= 60 and row.prompt_tokens > 0 and row.cost > 0
    final = [line for line in answer.text.splitlines() if '"usage"' in line][-1]
    assert f'"completion_tokens":{row.completion_tokens}' in final  # the client is told
    await assert_settled_with(gateway, key_id, row.cost)


async def test_continuous_usage_is_billed_by_its_last_value(
    client: httpx.AsyncClient, gateway: RunningGateway, engine: AsyncEngine, fleet: Fleet
) -> None:
    key_id, secret = await create_key(client, name="vllm", limit="1")
    body = streamed("vllm")
    body["stream_options"] = {"continuous_usage_stats": True}
    answer = await client.post("/v1/chat/completions", json=body, headers=bearer(secret))
    assert answer.status_code == 200
    row = await generation_of(engine, key_id)
    served = fleet.stats()["vllm"]
    assert (row.status, row.completion_tokens) == ("ok", served.completion_tokens)
    assert row.completion_tokens == 50
    await assert_settled_with(gateway, key_id, row.cost)


async def test_a_client_that_gives_up_before_the_first_token_pays_the_prompt(
    gateway: RunningGateway, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    key_id, secret = await create_key(client, name="impatient", limit="1")
    impatient = httpx.Timeout(30, read=0.3)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=impatient) as hasty:
        with pytest.raises(httpx.ReadTimeout):
            await hasty.post("/v1/chat/completions", json=streamed("late"), headers=bearer(secret))
    row = await generation_of(engine, key_id)
    assert row.status == "cancelled"
    assert row.prompt_tokens > 0 and row.cost > 0
    assert_charged_by(row, "late")
    await assert_settled_with(gateway, key_id, row.cost)


@pytest.fixture
async def keepalive_gateway(
    fleet: Fleet,
    engine: AsyncEngine,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[RunningGateway]:
    """The same gateway with a short keepalive: a slow first token commits the 200 early."""
    catalog = write_catalog(
        tmp_path / "catalog.toml", {name: fleet.url_for(name) for name in PROVIDERS}
    )
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    settings.server.stream_keepalive_s = 0.2
    async with redis_client(redis_url, redis_prefix), run_gateway(settings) as running:
        yield running


async def ledger_rows(engine: AsyncEngine, key_id: str) -> list[Any]:
    async with engine.connect() as conn:
        query = select(generations).where(generations.c.api_key_id == key_id)
        return list((await conn.execute(query)).all())


async def test_a_client_that_leaves_after_the_keepalive_comment_is_recorded_once(
    keepalive_gateway: RunningGateway, engine: AsyncEngine
) -> None:
    gateway = keepalive_gateway
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        key_id, secret = await create_key(client, name="left-early", limit="1")
        async with client.stream(
            "POST", "/v1/chat/completions", json=streamed("late"), headers=bearer(secret)
        ) as answer:
            assert answer.status_code == 200
            async for line in answer.aiter_lines():
                assert line == ": processing"
                break  # the 200 is committed, no token yet: leave
    row = await generation_of(engine, key_id)
    assert row.status == "cancelled" and row.cancelled
    assert row.prompt_tokens > 0 and row.cost > 0
    assert_charged_by(row, "late")
    await assert_settled_with(gateway, key_id, row.cost)
    assert len(await ledger_rows(engine, key_id)) == 1


async def test_a_stream_committed_by_the_keepalive_is_recorded_once(
    keepalive_gateway: RunningGateway, engine: AsyncEngine
) -> None:
    gateway = keepalive_gateway
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        key_id, secret = await create_key(client, name="late-ok", limit="1")
        body = streamed("late")
        answer = await client.post("/v1/chat/completions", json=body, headers=bearer(secret))
    assert answer.status_code == 200 and answer.text.startswith(": processing")
    assert answer.text.endswith("data: [DONE]\n\n")
    row = await generation_of(engine, key_id)
    assert row.status == "ok" and row.cost > 0
    await assert_settled_with(gateway, key_id, row.cost)
    assert len(await ledger_rows(engine, key_id)) == 1


async def test_a_stream_cut_after_the_keepalive_comment_is_recorded_once(
    keepalive_gateway: RunningGateway, engine: AsyncEngine
) -> None:
    gateway = keepalive_gateway
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        key_id, secret = await create_key(client, name="late-cut", limit="1")
        body = streamed("late-cut")
        answer = await client.post("/v1/chat/completions", json=body, headers=bearer(secret))
    assert answer.status_code == 200 and answer.text.startswith(": processing")
    assert '"finish_reason":"error"' in answer.text
    assert answer.text.endswith("data: [DONE]\n\n")
    row = await generation_of(engine, key_id)
    assert row.status == "error" and row.completion_tokens > 0 and row.cost > 0
    await assert_settled_with(gateway, key_id, row.cost)
    assert len(await ledger_rows(engine, key_id)) == 1
