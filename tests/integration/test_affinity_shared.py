"""Prompt-cache affinity shared by two gateway replicas on one Redis: a conversation started
through replica A is sent to the same (warm) endpoint by replica B, which had never seen it;
with sharing off, B doesn't know it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    RedisSettings,
    RoutingSettings,
    Settings,
)
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.keys_fixtures import redis_client
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually

MODEL = "openai/gpt-oss-20b"
OPENING = [
    {"role": "system", "content": "You are terse. " * 400},  # a long prompt: caching it pays
    {"role": "user", "content": "first question"},
]
EXPLAIN = {"X-Route-Explain": "1"}


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(
        {"alpha": Profile(completion_tokens=4), "beta": Profile(completion_tokens=4)}
    )
    try:
        yield fleet
    finally:
        await fleet.close()


@asynccontextmanager
async def replicas(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str, *, shared: bool
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    catalog = write_catalog(
        tmp_path / "catalog.toml", {n: fleet.url_for(n) for n in ("alpha", "beta")}
    )
    async with AsyncExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            settings = Settings(
                catalog=CatalogSettings(catalog=catalog),
                database=DatabaseSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db"),
                redis=RedisSettings(redis_url=redis_url, redis_prefix=prefix),
                routing=RoutingSettings(retries_per_endpoint=0, affinity_shared=shared),
            )
            settings.ledger.spool_dir = tmp_path / f"spool-{name}"
            gateway = await stack.enter_async_context(run_gateway(settings))
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(base_url=gateway.url, timeout=30))
            )
        yield clients[0], clients[1]


def turn_two(first: dict[str, Any]) -> dict[str, Any]:
    answer = first["choices"][0]["message"]["content"] or "ok"
    messages = [
        *OPENING,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "and?"},
    ]
    return {"model": MODEL, "messages": messages, "max_tokens": 4}


async def start_on_beta(client: httpx.AsyncClient) -> dict[str, Any]:
    """Turn one, pinned to beta (the dearer one, so nobody would pick it without affinity)."""
    body = {"model": MODEL, "messages": OPENING, "max_tokens": 4, "provider": {"order": ["beta"]}}
    first = await client.post("/v1/chat/completions", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["provider"] == "beta"
    return first.json()


async def test_a_conversation_started_on_one_replica_stays_on_its_endpoint_through_another(
    fleet: Fleet, tmp_path: Path, redis_url: str, redis_prefix: str, redis: Redis
) -> None:
    async with replicas(fleet, tmp_path, redis_url, redis_prefix, shared=True) as (a, b):
        first = await start_on_beta(a)
        stored = f"{redis_prefix}affinity:"

        async def shared() -> bool:  # written behind, within the flush interval
            return bool([k async for k in redis.scan_iter(match=f"{stored}*", count=1000)])

        await eventually(shared, 10, what="the conversation's endpoint in Redis")
        second = await b.post("/v1/chat/completions", json=turn_two(first), headers=EXPLAIN)
        assert second.status_code == 200, second.text
        assert second.json()["provider"] == "beta"
        assert second.json()["route"]["pick"] == "affinity"
        # Replica B now knows it in memory: the next turns don't read Redis again.
        await redis.delete(*[k async for k in redis.scan_iter(match=f"{stored}*", count=1000)])
        third = await b.post("/v1/chat/completions", json=turn_two(first), headers=EXPLAIN)
        assert third.json()["route"]["pick"] == "affinity"


async def test_without_sharing_the_other_replica_does_not_know_the_conversation(
    fleet: Fleet, tmp_path: Path, redis_url: str, redis_prefix: str, redis: Redis
) -> None:
    async with replicas(fleet, tmp_path, redis_url, redis_prefix, shared=False) as (a, b):
        first = await start_on_beta(a)
        second = await b.post("/v1/chat/completions", json=turn_two(first), headers=EXPLAIN)
        assert second.status_code == 200
        assert second.json()["route"]["pick"] != "affinity"
        assert not [k async for k in redis.scan_iter(match=f"{redis_prefix}affinity:*")]


async def test_a_garbled_shared_entry_is_ignored(
    fleet: Fleet, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    async with (
        redis_client(redis_url, redis_prefix) as redis,
        replicas(fleet, tmp_path, redis_url, redis_prefix, shared=True) as (a, b),
    ):
        first = await start_on_beta(a)

        async def written() -> list[bytes]:
            return [k async for k in redis.scan_iter(match=f"{redis_prefix}affinity:*")]

        await eventually(lambda: _nonempty(written()), 10, what="the shared entry")
        for key in await written():
            await redis.set(key, b"not\nan\nentry\nat all")
        second = await b.post("/v1/chat/completions", json=turn_two(first), headers=EXPLAIN)
        assert second.status_code == 200  # routed as if new, never an error
        assert second.json()["route"]["pick"] != "affinity"


async def _nonempty(keys: Any) -> bool:
    return bool(await keys)
