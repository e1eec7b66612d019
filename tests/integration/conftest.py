"""Integration fixtures shared across suites: a migrated Postgres database's engine, and a
redis-py client that removes the test's keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.ledger.migrate import upgrade_to_head_async
from tests.integration.keys_fixtures import redis_client


@pytest.fixture
async def engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's own Postgres database, migrated to head."""
    await upgrade_to_head_async(pg_database)
    engine = create_async_engine(pg_database)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[Redis]:
    async with redis_client(redis_url, redis_prefix) as client:  # removes the test's keys
        yield client
