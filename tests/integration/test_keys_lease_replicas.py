"""Leases across two gateway processes on one Postgres and Redis: a 100-way burst split between
them stays within the bound, a killed process's lease is reclaimed within its TTL, a clean
shutdown gives it back, and revocation and a lowered limit bind with leases outstanding."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.keys.redis_limiter import RedisLimiter
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.keys_fixtures import (
    admin_headers,
    bearer,
    chat,
    create_key,
    decimal_json,
    key_settings,
    poll,
)
from tests.integration.ledger_fixtures import GatewayProcess, clean_env
from tests.integration.test_keys_limits import burst_to_the_limit, ledger_spend
from tests.integration.test_ledger_spool import _answers, own_redis
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

PROPAGATION_S = 1.0  # a key change reaches every replica within this (test_keys_revocation)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"alpha": Profile(completion_tokens=12)})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
def catalog(fleet: Fleet, tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})


@pytest.fixture
async def first(
    catalog: Path, engine: AsyncEngine, pg_database: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[RunningGateway]:
    """The replica the admin talks to, in this process (leases on, the default)."""
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    async with run_gateway(settings) as running:
        yield running


@pytest.fixture
def second(
    first: RunningGateway,
    catalog: Path,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
):
    """Starts another replica, `gateway serve` in its own process, with extra settings."""

    @asynccontextmanager
    async def start(**env: str) -> AsyncIterator[GatewayProcess]:
        process = GatewayProcess(
            tmp_path,
            clean_env(
                DATABASE_URL=pg_database,
                REDIS_URL=redis_url,
                REDIS_PREFIX=redis_prefix,
                GATEWAY_AUTH="required",
                GATEWAY_CATALOG=str(catalog),
                **env,
            ),
        )
        try:
            await process.ready()
            yield process
        finally:
            process.terminate()

    return start


async def raw_held(redis: Redis, prefix: str, key_id: str) -> int:
    """The key's held total in Redis: requests' holds plus every worker's lease."""
    return int(await redis.get(f"{prefix}key:{{{key_id}}}:held") or 0)


async def leases(redis: Redis, prefix: str, key_id: str) -> dict[str, int]:
    holds = await redis.hgetall(f"{prefix}key:{{{key_id}}}:holds")
    return {k.decode(): int(v) for k, v in holds.items() if k.startswith(b"lease:")}


async def ask(client: httpx.AsyncClient, url: str, secret: str) -> httpx.Response:
    body = chat(max_tokens=12)
    return await client.post(f"{url}/v1/chat/completions", json=body, headers=bearer(secret))


async def test_a_100_way_burst_across_two_processes_overshoots_by_at_most_one_worst_case(
    first: RunningGateway, second, engine: AsyncEngine, redis: Redis, redis_prefix: str
):
    limit = Decimal("0.00004")
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        second() as other,
        httpx.AsyncClient(timeout=30, limits=limits) as client,
    ):
        response = await client.post(
            f"{first.url}/api/v1/keys",
            json={"name": "burst", "limit": str(limit)},
            headers=admin_headers(),
        )
        key_id, secret = response.json()["data"]["id"], response.json()["key"]
        urls = (first.url, other.url)
        await poll(
            lambda: _accepted(client, other.url, secret), timeout_s=5, what="key on the replica"
        )
        by_process, worst = await burst_to_the_limit(client, urls, secret, chat(max_tokens=12))
        assert min(by_process) > 0 and worst > 0  # both processes admitted from their leases
        served = sum(by_process)

        async def all_in_ledger() -> bool:
            return (await ledger_spend(engine, key_id))[0] == served

        await poll(all_in_ledger, timeout_s=30, what="every served generation in the ledger")
        _, spent = await ledger_spend(engine, key_id)
        assert spent <= limit + worst
        # Refused once less than one worst case was left in Redis and in the refusing
        # process's lease; the other process's unused slice is less than one worst case too.
        assert spent > limit - 2 * worst
        usage = decimal_json(
            (await client.get(f"{first.url}/api/v1/key", headers=bearer(secret))).text
        )["data"]
        assert usage["usage"] == spent  # the limiter's counter matches the ledger exactly


async def _accepted(client: httpx.AsyncClient, url: str, secret: str) -> bool:
    answer = await client.get(f"{url}/api/v1/key", headers=bearer(secret))
    return answer.status_code == 200


async def test_a_killed_processs_lease_is_reclaimed_within_its_ttl(
    first: RunningGateway, second, redis: Redis, redis_prefix: str
):
    ttl_s = 2.0
    async with (
        # The whole room in one lease: until it is reclaimed no one else can be admitted.
        second(GATEWAY_KEYS_LEASE_TTL_S=str(ttl_s), GATEWAY_KEYS_LEASE_SHARE="1") as other,
        httpx.AsyncClient(timeout=30) as client,
    ):
        key_id, secret = await create_key(client_for(client, first), name="killed", limit="0.001")
        await poll(lambda: _accepted(client, other.url, secret), timeout_s=5, what="replica key")
        assert (await ask(client, other.url, secret)).status_code == 200
        assert len(await leases(redis, redis_prefix, key_id)) == 1
        other.crash()  # SIGKILL: nothing given back
        killed = time.monotonic()
        assert (await ask(client, first.url, secret)).status_code == 402  # still leased

        async def admitted() -> bool:
            status = (await ask(client, first.url, secret)).status_code
            assert status in (200, 402)
            return status == 200

        await poll(admitted, timeout_s=ttl_s + 10, what="the dead process's lease reclaimed")
        took = time.monotonic() - killed
        assert took <= ttl_s + 1.0, f"reclaimed after {took:.2f} s"


def client_for(client: httpx.AsyncClient, gateway: RunningGateway) -> httpx.AsyncClient:
    client.base_url = httpx.URL(gateway.url)
    return client


async def test_a_clean_shutdown_gives_the_lease_back(
    first: RunningGateway, second, redis: Redis, redis_prefix: str
):
    async with httpx.AsyncClient(timeout=30) as client:
        key_id, secret = await create_key(client_for(client, first), name="clean", limit="1")
        async with second() as other:
            await poll(lambda: _accepted(client, other.url, secret), timeout_s=5, what="key")
            for _ in range(3):
                assert (await ask(client, other.url, secret)).status_code == 200
            assert await raw_held(redis, redis_prefix, key_id) > 0
            assert len(await leases(redis, redis_prefix, key_id)) == 1
            assert other.terminate() in (0, -signal.SIGTERM), other.output()  # gives it back
        assert await raw_held(redis, redis_prefix, key_id) == 0
        assert await leases(redis, redis_prefix, key_id) == {}


async def test_revocation_with_leases_outstanding_binds_within_a_second(
    first: RunningGateway, second, redis: Redis, redis_prefix: str
):
    async with second() as other, httpx.AsyncClient(timeout=30) as client:
        key_id, secret = await create_key(client_for(client, first), name="revoked", limit="1")
        await poll(lambda: _accepted(client, other.url, secret), timeout_s=5, what="key")
        for url in (first.url, other.url):
            assert (await ask(client, url, secret)).status_code == 200
        assert len(await leases(redis, redis_prefix, key_id)) == 2  # one per process
        disabled = await client.patch(
            f"{first.url}/api/v1/keys/{key_id}", json={"disabled": True}, headers=admin_headers()
        )
        assert disabled.status_code == 200
        started = time.monotonic()

        async def refused_by_both() -> bool:
            for url in (first.url, other.url):
                status = (await ask(client, url, secret)).status_code
                assert status in (200, 401)
                if status == 200:
                    return False
            return True

        await poll(refused_by_both, timeout_s=5, what="revocation on both processes")
        assert time.monotonic() - started < PROPAGATION_S

        async def given_back() -> bool:
            return await raw_held(redis, redis_prefix, key_id) == 0

        # Each process's lease loop turns every second: its slice is back within two.
        await poll(given_back, timeout_s=5, what="both leases given back")
        assert time.monotonic() - started < PROPAGATION_S + 2.0
        assert await leases(redis, redis_prefix, key_id) == {}


async def test_a_lowered_limit_binds_with_leases_outstanding(
    first: RunningGateway, second, engine: AsyncEngine, redis: Redis, redis_prefix: str
):
    async with second() as other, httpx.AsyncClient(timeout=30) as client:
        key_id, secret = await create_key(client_for(client, first), name="lowered", limit="1")
        await poll(lambda: _accepted(client, other.url, secret), timeout_s=5, what="key")
        answers = [await ask(client, url, secret) for url in (first.url, other.url) * 2]
        assert [a.status_code for a in answers] == [200] * 4
        before = await leases(redis, redis_prefix, key_id)
        assert len(before) == 2
        _, probe = await create_key(client, name="probe", limit="0.000000001")
        refused = await ask(client, first.url, probe)
        assert refused.status_code == 402
        worst = Decimal(refused.json()["error"]["metadata"]["required"])
        spent_usd = sum(decimal_json(a.text)["usage"]["cost"] for a in answers)
        lowered = spent_usd + worst * Decimal("1.2")  # room for one request more
        patched = await client.patch(
            f"{first.url}/api/v1/keys/{key_id}",
            json={"limit": str(lowered)},
            headers=admin_headers(),
        )
        assert patched.status_code == 200

        started = time.monotonic()

        async def both_see_it() -> bool:
            for url in (first.url, other.url):
                answer = await client.get(f"{url}/api/v1/key", headers=bearer(secret))
                if decimal_json(answer.text)["data"]["limit"] != lowered:
                    return False
            return True

        took = await poll(both_see_it, timeout_s=5, what="the lowered limit on both")
        assert took < PROPAGATION_S

        async def old_slices_back() -> bool:
            return not set(before) & set(await leases(redis, redis_prefix, key_id))

        # Each process's lease loop retires a lease taken under the old limit within a second.
        await poll(old_slices_back, timeout_s=5, what="the old leases given back")
        assert time.monotonic() - started < PROPAGATION_S + 2.0
        statuses = [
            (await ask(client, url, secret)).status_code for url in (first.url, other.url) * 5
        ]
        assert set(statuses) <= {200, 402}
        assert statuses.count(200) == 1  # the one request the lowered limit has room for
        served = 4 + statuses.count(200)

        async def all_in_ledger() -> bool:
            return (await ledger_spend(engine, key_id))[0] == served

        await poll(all_in_ledger, timeout_s=30, what="every generation in the ledger")
        _, spent = await ledger_spend(engine, key_id)
        assert spent <= lowered  # no old slice admitted anything once the limit was seen


async def test_with_redis_killed_a_leased_key_is_refused_at_once_as_without_leases(
    catalog: Path, engine: AsyncEngine, pg_database: str, tmp_path: Path
):
    (tmp_path / "redis").mkdir()
    with own_redis(tmp_path / "redis") as (redis_url, kill, _):
        await _answers(redis_url)
        settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix="gw:")
        settings.ledger.spool_dir = tmp_path / "spool"
        async with (
            run_gateway(settings) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        ):
            _, secret = await create_key(client, name="down", limit="1")
            assert (await ask(client, gateway.url, secret)).status_code == 200  # leased
            kill()
            started = time.monotonic()
            refused = await ask(client, gateway.url, secret)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["metadata"]["reason"] == "limiter_unavailable"
            assert time.monotonic() - started < 2.0  # fail fast, no lease admission meanwhile
            assert gateway.resources.ledger.spool is not None
            assert gateway.resources.ledger.spool.depth == 0  # nothing was served unmetered


async def test_lease_off_checks_every_request_in_redis(
    catalog: Path, engine: AsyncEngine, pg_database: str, redis_url: str, redis: Redis,
    redis_prefix: str,
):  # fmt: skip
    settings = key_settings(
        catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix, lease=False
    )
    async with (
        run_gateway(settings) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
    ):
        key_id, secret = await create_key(client, name="unleased", limit="1")
        assert (await ask(client, gateway.url, secret)).status_code == 200
        limiter = gateway.resources.keys.limiter
        assert isinstance(limiter, RedisLimiter) and limiter.leases is None
        assert await leases(redis, redis_prefix, key_id) == {}  # a hold per request, settled
        assert await raw_held(redis, redis_prefix, key_id) == 0
