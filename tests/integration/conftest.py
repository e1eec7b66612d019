"""Integration fixtures shared across suites: a migrated Postgres database's engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.ledger.migrate import upgrade_to_head_async


@pytest.fixture
async def engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's own Postgres database, migrated to head."""
    await upgrade_to_head_async(pg_database)
    engine = create_async_engine(pg_database)
    try:
        yield engine
    finally:
        await engine.dispose()
