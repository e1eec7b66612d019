"""The gateway on a Sentinel-watched primary (`redis+sentinel://`): it meters, bills and keeps
stats through the primary, and when the primary is SIGKILLed it follows the failover: errors
are clean 503s confined to the failover, and every answered generation reaches the ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.keys.refresh import KeyRefresher, announce
from gateway.redis_options import BACKGROUND_OPTIONS
from gateway.redis_topology import Topology
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.integration.keys_fixtures import bearer, chat, create_key, decimal_json, key_settings
from tests.integration.ledger_fixtures import wait_for_ids
from tests.integration.test_keys_limits import ledger_spend
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually
from tests.support.redis_topologies import SentinelSetup, cli, redis_sentinel

FAILOVER_BOUND_S = 30.0  # down-after 1 s + election + promotion, on two busy cores


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    with redis_sentinel(tmp_path / "sentinel") as running:
        yield running


async def test_key_changes_are_announced_through_sentinel(
    sentinel: SentinelSetup, redis_prefix: str
) -> None:
    redis = Topology.from_url(sentinel.url).background(**BACKGROUND_OPTIONS)
    refresher = KeyRefresher(None, None)  # type: ignore[arg-type]  # only its nudge is used
    channel = f"{redis_prefix}keys:changed"
    listening = asyncio.create_task(refresher.listen(redis, channel))
    try:

        async def nudged() -> bool:
            await announce(redis, channel)
            return refresher.change_announced

        await eventually(nudged, 20, what="a key change heard through sentinel", interval_s=0.2)

        assert refresher.change_announced
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await redis.aclose()


async def test_a_gateway_follows_a_sentinel_failover_with_bounded_errors(
    sentinel: SentinelSetup,
    engine: AsyncEngine,
    pg_database: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    fleet = await start_fleet({"alpha": Profile(completion_tokens=12)})
    try:
        catalog = write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})
        settings = key_settings(
            catalog, pg_database, redis_url=sentinel.url, redis_prefix=redis_prefix
        )
        settings.ledger.spool_dir = tmp_path / "spool"
        async with (
            run_gateway(settings) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        ):
            key_id, secret = await create_key(client, name="sentinel", limit="10")
            served: list[str] = []
            refused: list[httpx.Response] = []

            async def ask() -> httpx.Response:
                answer = await client.post(
                    "/v1/chat/completions", json=chat(max_tokens=12), headers=bearer(secret)
                )
                if answer.status_code == 200:
                    served.append(answer.json()["id"])
                else:
                    refused.append(answer)
                return answer

            for _ in range(10):
                assert (await ask()).status_code == 200
            # Everything so far is on the replica too (async replication could otherwise lose
            # the last writes with the primary: a Redis property, not the gateway's).
            assert cli(sentinel.primary, "WAIT", "1", "5000").strip() == "1"
            killed = sentinel.kill_primary()
            killed_at = time.monotonic()
            while sentinel.master_port() in (None, killed):  # requests go on during failover
                assert time.monotonic() - killed_at < FAILOVER_BOUND_S, "no failover"
                await ask()
                await asyncio.sleep(0.05)
            failed_over_s = time.monotonic() - killed_at

            async def serving_again() -> bool:
                return (await ask()).status_code == 200

            await eventually(serving_again, 15, what="served through the new primary")
            recovered_s = time.monotonic() - killed_at
            refused_before = len(refused)
            for _ in range(20):  # and it stays that way
                assert (await ask()).status_code == 200
            assert len(refused) == refused_before
            reasons = {a.json()["error"]["metadata"]["reason"] for a in refused}
            assert {a.status_code for a in refused} <= {503}, [a.text for a in refused]
            assert reasons <= {"limiter_unavailable", "ledger_unavailable"}, reasons
            assert recovered_s < failed_over_s + 15
            # Every answered generation is billed once, and the limiter's counters (on the
            # promoted replica) agree with the ledger.
            await wait_for_ids(engine, served, timeout_s=30)
            count, spent = await ledger_spend(engine, key_id)
            assert count == len(served)
            usage = decimal_json((await client.get("/api/v1/key", headers=bearer(secret))).text)
            assert usage["data"]["usage"] == spent
            assert spent > Decimal(0)
            status = (await client.get("/ready")).json()
            assert status["redis"] == "ok"
    finally:
        await fleet.close()
