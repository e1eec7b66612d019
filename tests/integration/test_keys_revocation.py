"""Key changes reach every replica within a second: a second gateway process on the same
Postgres and Redis picks up keys created, disabled and deleted through the admin API and the
`gateway keys` CLI, and a change written straight to the database (no Redis nudge) arrives by
polling alone."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.keys.schemas import KeyPatch
from gateway.keys.store import KeyStore
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.keys_fixtures import (
    admin_headers,
    bearer,
    chat,
    create_key,
    key_settings,
    migrate,
    poll,
    redis_client,
)
from tests.integration.ledger_fixtures import GatewayProcess, clean_env
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

PROPAGATION_S = 1.0  # the bound for a change to reach every replica


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"alpha": Profile(completion_tokens=4)})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
def catalog(fleet: Fleet, tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})


@pytest.fixture
async def first(
    catalog: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[RunningGateway]:
    """The replica the admin talks to, in this process."""
    await migrate(pg_database)
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    async with redis_client(redis_url, redis_prefix), run_gateway(settings) as running:
        yield running


def env_for(pg_database: str, redis_url: str, redis_prefix: str, catalog: Path) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=pg_database,
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        GATEWAY_AUTH="required",
        GATEWAY_CATALOG=str(catalog),
        GATEWAY_LOG_LEVEL="debug",
    )


@pytest.fixture
async def second(
    first: RunningGateway,
    catalog: Path,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[GatewayProcess]:
    """Another replica: `gateway serve` in its own process, no admin token."""
    process = GatewayProcess(tmp_path, env_for(pg_database, redis_url, redis_prefix, catalog))
    try:
        await process.ready()
        yield process
    finally:
        process.terminate()


async def accepted(client: httpx.AsyncClient, url: str, secret: str) -> bool:
    answer = await client.post(f"{url}/v1/chat/completions", json=chat(), headers=bearer(secret))
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


async def test_a_second_process_sees_new_and_revoked_keys_within_a_second(
    first: RunningGateway, second: GatewayProcess
):
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
        key_id, secret = await create_key(client, name="replicated")
        took = await poll(
            lambda: accepted(client, second.url, secret), timeout_s=5, what="new key on replica"
        )
        assert took < PROPAGATION_S

        disabled = await client.patch(
            f"/api/v1/keys/{key_id}", json={"disabled": True}, headers=admin_headers()
        )
        assert disabled.status_code == 200

        async def refused() -> bool:
            return not await accepted(client, second.url, secret)

        took = await poll(refused, timeout_s=5, what="revocation on the second replica")
        assert took < PROPAGATION_S, f"revocation took {took:.3f} s"
    assert secret not in second.output()


async def test_cli_changes_reach_a_running_gateway_within_a_second(
    first: RunningGateway,
    second: GatewayProcess,
    catalog: Path,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
):
    env = env_for(pg_database, redis_url, redis_prefix, catalog)

    async def cli(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "keys",
            *args,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return out.decode()

    created = json.loads(
        await cli(
            "create", "--name", "from-cli", "--limit-usd", "5", "--limit-reset", "monthly", "--json"
        )
    )
    key_id, secret = created["data"]["id"], created["key"]
    assert created["data"]["limit"] == 5 and created["data"]["limit_reset"] == "monthly"
    async with httpx.AsyncClient(timeout=10) as client:
        took = await poll(
            lambda: accepted(client, second.url, secret), timeout_s=5, what="CLI key on replica"
        )
        assert took < PROPAGATION_S
        listed = json.loads(await cli("list", "--json"))["data"]
        assert [k["id"] for k in listed] == [key_id] and secret not in json.dumps(listed)

        await cli("disable", key_id)

        async def refused_by(url: str) -> bool:
            return not await accepted(client, url, secret)

        took = await poll(lambda: refused_by(second.url), timeout_s=5, what="CLI revocation")
        assert took < PROPAGATION_S
        await poll(lambda: refused_by(first.url), timeout_s=5, what="CLI revocation on first")

        await cli("enable", key_id)
        await poll(lambda: accepted(client, second.url, secret), timeout_s=5, what="re-enabled")
        await cli("delete", key_id)
        took = await poll(lambda: refused_by(second.url), timeout_s=5, what="CLI deletion")
        assert took < PROPAGATION_S
        assert json.loads(await cli("list", "--json"))["data"] == []


async def test_polling_alone_revokes_within_a_second(first: RunningGateway, pg_database: str):
    # Written straight to the database: no Redis nudge, as from a CLI without REDIS_URL.
    engine = create_async_engine(pg_database)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            key_id, secret = await create_key(client, name="polled")
            assert await accepted(client, first.url, secret)
            await KeyStore(engine).update(key_id, KeyPatch(disabled=True))

            async def refused() -> bool:
                return not await accepted(client, first.url, secret)

            took = await poll(refused, timeout_s=5, what="revocation by polling")
        assert took < PROPAGATION_S, f"revocation took {took:.3f} s"
    finally:
        await engine.dispose()
