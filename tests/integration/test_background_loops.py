"""Background loops survive bad data: a key row this version can't read is skipped (and named
in the log) while a disable elsewhere still takes effect within a second; `/ready` names a loop
that has stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.keys import api_keys
from gateway.keys.schemas import KeyPatch
from gateway.keys.store import KeyStore
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.keys_fixtures import (
    bearer,
    chat,
    create_key,
    key_settings,
    migrate,
    poll,
    redis_client,
)
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

PROPAGATION_S = 1.0


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"alpha": Profile(completion_tokens=4)})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
async def gateway(
    fleet: Fleet, tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[RunningGateway]:
    catalog = write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})
    await migrate(pg_database)
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    async with redis_client(redis_url, redis_prefix), run_gateway(settings) as running:
        yield running


async def test_a_bad_key_row_is_skipped_and_a_disable_still_arrives(
    gateway: RunningGateway, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.keys.refresh")
    engine = create_async_engine(pg_database)
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            bad_id, bad_secret = await create_key(client, name="hand-edited")
            good_id, good_secret = await create_key(client, name="good")
            url = f"{gateway.v1}/chat/completions"
            assert (await client.post(url, json=chat(), headers=bearer(good_secret))).is_success
            # A hand edit (or a newer version's row) this version can't decode.
            async with engine.begin() as conn:
                await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == bad_id)
                    .values(
                        provider={"only": 42},
                        updated_at=datetime.now(UTC),
                        version=api_keys.c.version + 1,
                    )
                )

            async def named() -> bool:
                return bad_id in " ".join(str(r.__dict__) for r in caplog.records)

            await poll(named, timeout_s=5, what="the unreadable row named in the log")
            # Written straight to the database, as another replica or the CLI would.
            await KeyStore(engine).update(good_id, KeyPatch(disabled=True))

            async def refused() -> bool:
                answer = await client.post(url, json=chat(), headers=bearer(good_secret))
                return answer.status_code == 401

            took = await poll(refused, timeout_s=5, what="the disable arriving")
            assert took < PROPAGATION_S
            # The unreadable key fails closed, and the loop is still running.
            bad = await client.post(url, json=chat(), headers=bearer(bad_secret))
            assert bad.status_code == 401
            ready = await client.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["loops"]["keys-refresh"] == "running"
    finally:
        await engine.dispose()


async def test_ready_names_a_stopped_loop(gateway: RunningGateway) -> None:
    task = next(t for t in gateway.resources.keys.tasks if t.get_name() == "keys-refresh")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["stopped"] == ["keys-refresh"]
    assert body["loops"]["keys-refresh"].startswith("stopped")
