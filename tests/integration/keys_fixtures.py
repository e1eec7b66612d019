"""Helpers for the API-key integration tests: a migrated Postgres, gateway settings with auth
and an admin token, key creation through the admin API, polling with deadlines."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    KeysSettings,
    LedgerSettings,
    RedisSettings,
    RoutingSettings,
    ServerSettings,
    Settings,
)
from tests.support.polling import eventually

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
MODEL = "openai/gpt-oss-20b"


def key_settings(
    catalog: Path,
    database_url: str,
    *,
    redis_url: str | None,
    redis_prefix: str,
    auth: str = "required",
    admin_token: str | None = ADMIN_TOKEN,
    **keys: Any,
) -> Settings:
    return Settings(
        server=ServerSettings(auth=auth, admin_token=admin_token),
        catalog=CatalogSettings(catalog=catalog),
        database=DatabaseSettings(database_url=database_url),
        redis=RedisSettings(redis_url=redis_url, redis_prefix=redis_prefix),
        routing=RoutingSettings(retries_per_endpoint=0),
        ledger=LedgerSettings(flush_interval_s=0.05),
        keys=KeysSettings(**keys),
    )


async def migrate(database_url: str) -> None:
    await upgrade_to_head_async(database_url)


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def decimal_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


async def create_key(client: httpx.AsyncClient, **spec: Any) -> tuple[str, str]:
    """(key id, secret) of a key made through the admin API."""
    response = await client.post("/api/v1/keys", json=spec, headers=admin_headers())
    assert response.status_code == 201, response.text
    body = response.json()
    return body["data"]["id"], body["key"]


poll = functools.partial(eventually, timeout_s=10.0)


@asynccontextmanager
async def redis_client(url: str, prefix: str) -> AsyncIterator[Redis]:
    """A client for the test's Redis; every key under `prefix` is removed afterwards."""
    redis = Redis.from_url(url)
    try:
        yield redis
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
