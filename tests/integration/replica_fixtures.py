"""Replicas as operators run them: `gateway serve` processes on different ports sharing one
Redis and one Postgres, in front of simulated providers on loopback, for the scale-out tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from gateway.ledger.migrate import upgrade_to_head_async
from providers.simulator.server import Fleet
from tests.conftest import PG_ADMIN_DSN, REDIS_URL, _asyncpg_dsn
from tests.integration.keys_fixtures import ADMIN_TOKEN
from tests.integration.ledger_fixtures import GatewayProcess, clean_env, drop_redis_keys

STATS_REFRESH_S = 1.0  # GATEWAY_ROUTING_STATS_REFRESH_S of the replicas (the default)
STATS_FLUSH_S = 0.2  # GATEWAY_ROUTING_STATS_FLUSH_S (the default)
CLAIM_IDLE_S = 2.0  # GATEWAY_LEDGER_CLAIM_IDLE_S: a dead replica's writer is taken over after it


@dataclass(frozen=True)
class Route:
    """One model of the test catalog: its providers in price order (cheapest first)."""

    model: str
    providers: tuple[str, ...]
    prompt_price: str = "0.01"
    completion_price: str = "0.1"


def write_replica_catalog(path: Path, fleet: Fleet, routes: list[Route]) -> Path:
    lines: list[str] = []
    for route in routes:
        lines += [f'[models."{route.model}"]', 'name = "Test model"', "context_length = 131072", ""]
    for route in routes:
        for rank, provider in enumerate(route.providers):
            prompt = f"{route.prompt_price}{rank}" if rank else route.prompt_price
            lines += [
                "[[endpoints]]",
                f'model = "{route.model}"',
                f'provider = "{provider}"',
                f'base_url = "{fleet.url_for(provider)}"',
                'upstream_model = "gpt-oss-20b"',
                "context_length = 131072",
                'supported_parameters = ["max_tokens", "temperature"]',
                f'price = {{ prompt = "{prompt}", completion = "{route.completion_price}" }}',
                "",
            ]
    path.write_text("\n".join(lines))
    return path


@asynccontextmanager
async def shared_database() -> AsyncIterator[str]:
    """A fresh, migrated Postgres database for a group of replicas; dropped afterwards."""
    import uuid

    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _asyncpg_dsn(PG_ADMIN_DSN, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await upgrade_to_head_async(url)
        yield url
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def replica_env(
    database_url: str, redis_prefix: str, catalog: Path, **extra: str
) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX=redis_prefix,
        GATEWAY_CATALOG=str(catalog),
        GATEWAY_AUTH="required",
        GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
        GATEWAY_ROUTING_RETRIES_PER_ENDPOINT="0",
        GATEWAY_ROUTING_EXPLORE_SHARE="0",
        GATEWAY_LEDGER_FLUSH_INTERVAL_S="0.05",
        GATEWAY_LEDGER_CLAIM_IDLE_S=str(CLAIM_IDLE_S),
        **extra,
    )


@asynccontextmanager
async def replicas(
    cwd: Path, env: dict[str, str], count: int = 2
) -> AsyncIterator[list[GatewayProcess]]:
    """`count` replicas started side by side (the database is migrated already)."""
    started = [GatewayProcess(cwd, env, "--no-migrate") for _ in range(count)]
    try:
        await asyncio.gather(*(replica.ready() for replica in started))
        yield started
    finally:
        for replica in started:
            if replica.proc.poll() is None:
                replica.terminate()


async def cleanup_prefix(prefix: str) -> None:
    await drop_redis_keys(REDIS_URL, prefix)


def chat_body(model: str, content: str = "hi", **extra: Any) -> bytes:
    """A compact JSON body: its length is what the key's hold prices the prompt bound from."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return json.dumps(body, separators=(",", ":")).encode()


async def post_chat(
    client: httpx.AsyncClient, url: str, body: bytes, secret: str
) -> httpx.Response:
    return await client.post(
        f"{url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
