"""Fixtures every suite shares: service URLs, a database per test, a Redis prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _asyncpg_dsn(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0]
    return f"{base}/{database}"


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A fresh Postgres database for one test; yields its SQLAlchemy asyncpg URL."""
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _asyncpg_dsn(PG_ADMIN_DSN, name)
    yield dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses, so tests can share one Redis server."""
    return f"gwtest:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL
