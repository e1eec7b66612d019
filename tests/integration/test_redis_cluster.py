"""The gateway on a 3-primary Redis Cluster (`redis+cluster://`): the limiter's multi-key scripts
and the end-of-request batch run without CROSSSLOT, the ledger stream's consumer group, the
stats refresh, shared breakers and key-change pub/sub all work across the nodes."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.keys.pico import to_pico
from gateway.keys.record import ApiKey, RateLimit
from gateway.keys.redis_limiter import RedisLimiter
from gateway.keys.refresh import KeyRefresher, announce
from gateway.ledger.events import GenerationEvent
from gateway.ledger.stream import RedisStreamLedger
from gateway.redis_options import BACKGROUND_OPTIONS
from gateway.redis_topology import Topology
from gateway.resp import Batch, Commands, ReplyError
from gateway.resp_redispy import RedisPyCommands
from providers.pricing import Cost
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from routing.breaker import BreakerState
from routing.buckets import Layout, Observation
from routing.redis_stats_store import RedisStatsStore
from tests.integration.keys_fixtures import bearer, chat, create_key, decimal_json, key_settings
from tests.integration.ledger_fixtures import (
    GatewayProcess,
    clean_env,
    stored_ids,
    wait_for_ids,
    writer_pids,
)
from tests.integration.ledger_fixtures import chat as plain_chat
from tests.integration.test_keys_limits import ledger_spend
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually
from tests.support.redis_topologies import Cluster, redis_cluster

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
async def commands(cluster: Cluster) -> AsyncIterator[Commands]:
    client = Topology.from_url(cluster.url).commands()
    yield client
    await client.aclose()


@pytest.fixture
async def background(cluster: Cluster) -> AsyncIterator[RedisCluster]:
    client = Topology.from_url(cluster.url).background(**BACKGROUND_OPTIONS)
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


async def test_the_cluster_refuses_cross_slot_scripts_but_runs_the_limiters(
    commands: Commands, background: RedisCluster, redis_prefix: str
) -> None:
    # The cluster does enforce slots: a script over two untagged keys is refused ...
    with pytest.raises(ReplyError, match="same slot"):
        await commands.execute("EVAL", "return 1", 2, f"{redis_prefix}a", f"{redis_prefix}b")
    # ... while the limiter's admit (6 keys) and settle (9 keys) scripts, sent in one batch with
    # the ledger's XADD (another slot), all run.
    limiter = RedisLimiter(commands, redis_prefix)
    stream = RedisStreamLedger(background, redis_prefix, claim_idle_s=30, resp=commands)
    key = ApiKey(
        "key-c1", "c", "0" * 64, "sk-gw-c", NOW, NOW, Decimal(1), "daily", RateLimit(60, 10_000)
    )
    hold = await limiter.admit(key, Decimal("0.5"))
    assert hold.amount > 0 and hold.headers["X-RateLimit-Limit"] == "60"
    event = GenerationEvent("gen-cluster-1", NOW, "m", "m", "balanced", streamed=False)
    event.cost = Cost(Decimal("0.25"), Decimal(0), Decimal(0), Decimal(0))
    batch = Batch()
    limiter.settle_into(batch, hold, Decimal("0.25"), 100)
    stream.emit_into(batch, event)
    await batch.send()
    assert not hold.settle_failed
    usage = await limiter.usage(key)
    assert (usage.total, usage.daily, usage.held) == (250_000_000_000, 250_000_000_000, 0)
    assert await background.xlen(stream.key) == 1
    # Over the spend limit the same script refuses (402) and holds nothing.
    with pytest.raises(Exception, match="spend limit"):
        await limiter.admit(key, Decimal("0.9"))


async def test_leased_keys_admit_settle_and_give_back_on_a_cluster(
    commands: Commands, background: RedisCluster, redis_prefix: str
) -> None:
    # The LEASE script's keys (the admit keys past the rate ones) and the settle that gives a
    # lease's part back (its tenth argument) share the key's hash tag: they run on whichever
    # node holds it. Several keys, so more than one node serves them.
    workers = [RedisLimiter(commands, redis_prefix, lease_share=0.5) for _ in range(2)]
    capped = [
        ApiKey(f"key-l{n}", "l", "0" * 64, "sk-gw-l", NOW, NOW, Decimal(1), "daily", RateLimit())
        for n in range(6)
    ]
    worst, cost = Decimal("0.01"), Decimal("0.004")
    for key in capped:
        for limiter in workers:
            for _ in range(3):
                hold = await limiter.admit(key, worst)
                assert hold.lease  # admitted from this worker's lease
                batch = Batch()
                limiter.settle_into(batch, hold, cost, 10)
                await batch.send()
                assert not hold.settle_failed
    for limiter in workers:
        assert limiter.leases is not None
        assert limiter.leases.waited == len(capped)  # one Redis wait per key, the rest local
    for key in capped:
        assert (await workers[0].usage(key)).daily == 6 * to_pico(cost)
        # Redis holds exactly the two leases' unused parts: every settle gave its part back.
        held = await background.get(f"{redis_prefix}key:{{{key.id}}}:held")
        assert int(held or 0) == sum(w.leases.free_of(key.id) for w in workers if w.leases) > 0
    for limiter in workers:
        assert limiter.leases is not None
        await limiter.leases.aclose()
    for key in capped:  # every lease given back: Redis holds nothing for the key
        assert int(await background.get(f"{redis_prefix}key:{{{key.id}}}:held") or 0) == 0
        assert await background.hgetall(f"{redis_prefix}key:{{{key.id}}}:holds") == {}
    nodes = {background.get_node_from_key(f"{redis_prefix}key:{{{k.id}}}:held") for k in capped}
    assert len(nodes) > 1 and None not in nodes


async def test_breakers_and_stats_are_shared_through_the_cluster(
    background: RedisCluster, redis_prefix: str
) -> None:
    layout = Layout.build((30, 300), 30, 300, 5, 1.0)
    one = RedisStatsStore(background, redis_prefix, layout)
    other = RedisStatsStore(background, redis_prefix, layout)
    state = BreakerState("p/m", open=True, until=time.time() + 30, changed_at=time.time())
    one.share_breaker(state)
    one.record(Observation("p/m", time.time(), "error"))
    await one.flush()
    view = await other.read(time.time())
    assert view.breakers["p/m"].open
    assert any(counts for counts in view.buckets.values())
    assert await one.claim_probe("p/m", 123.0, 5) is True
    assert await other.claim_probe("p/m", 123.0, 5) is False  # one replica probes, not both


async def test_key_changes_are_announced_over_cluster_pubsub(
    background: RedisCluster, redis_prefix: str
) -> None:
    refresher = KeyRefresher(None, None)  # type: ignore[arg-type]  # only its nudge is used
    channel = f"{redis_prefix}keys:changed"
    listening = asyncio.create_task(refresher.listen(background, channel))
    try:

        async def nudged() -> bool:
            await announce(background, channel)  # until the subscription is in place
            return refresher.change_announced

        await eventually(nudged, 20, what="a key change heard over the cluster", interval_s=0.2)

        assert refresher.change_announced
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def test_a_gateway_on_a_cluster_meters_bills_and_keeps_stats(
    cluster: Cluster, engine: AsyncEngine, pg_database: str, redis_prefix: str, tmp_path: Path
) -> None:
    fleet: Fleet = await start_fleet({"alpha": Profile(completion_tokens=12)})
    try:
        catalog = write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})
        settings = key_settings(
            catalog, pg_database, redis_url=cluster.url, redis_prefix=redis_prefix
        )
        settings.ledger.spool_dir = tmp_path / "spool"
        async with (
            run_gateway(settings) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        ):
            limit = Decimal("0.00002")
            key_id, secret = await create_key(client, name="cluster", limit=str(limit))
            ids: list[str] = []
            for _ in range(60):
                answers = await asyncio.gather(
                    *(
                        client.post(
                            "/v1/chat/completions",
                            json=chat(max_tokens=12),
                            headers=bearer(secret),
                        )
                        for _ in range(10)
                    )
                )
                statuses = {a.status_code for a in answers}
                assert statuses <= {200, 402}, [a.text for a in answers]
                ids += [a.json()["id"] for a in answers if a.status_code == 200]
                if 200 not in statuses:
                    break
            else:
                raise AssertionError("the spend limit was never reached")
            assert ids
            await wait_for_ids(engine, ids, timeout_s=30)  # the consumer group wrote them all
            count, spent = await ledger_spend(engine, key_id)
            assert count == len(ids)
            usage = decimal_json((await client.get("/api/v1/key", headers=bearer(secret))).text)
            assert usage["data"]["usage"] == spent  # the limiter's counters match the ledger

            live = gateway.resources.routing.live  # type: ignore[union-attr]

            async def counted() -> bool:
                stats = (await live.refresh()).endpoints
                return any(s.rolling.requests >= len(ids) for s in stats.values())

            await eventually(counted, 20, what="the stats read back from the cluster")
            status = (await client.get("/ready")).json()
            assert status["redis"] == "ok"
    finally:
        await fleet.close()


async def test_a_burst_wider_than_the_connections_waits_instead_of_failing(
    cluster: Cluster, redis_prefix: str
) -> None:
    # redis-py's cluster client refuses a command past `max_connections` per node
    # (MaxConnectionsError); the seam makes such commands wait for a connection instead.
    seeds = [ClusterNode("127.0.0.1", port) for port in cluster.ports]
    client = RedisCluster(startup_nodes=seeds, max_connections=4, retry=Retry(NoBackoff(), 0))
    commands = RedisPyCommands(client, connections=4)
    try:
        limiter = RedisLimiter(commands, redis_prefix)
        keys = [
            ApiKey(f"key-b{n}", "b", "0" * 64, "sk-gw-b", NOW, NOW, Decimal(1), "none", RateLimit())
            for n in range(30)  # spread over the three nodes
        ]
        holds = await asyncio.gather(
            *(limiter.admit(keys[n % 30], Decimal("0.001")) for n in range(300))
        )
        assert len(holds) == 300 and all(h.amount for h in holds)
        assert all(len(node._connections) <= 4 for node in client.get_nodes())
    finally:
        await commands.aclose()


async def test_an_undecodable_entry_is_set_aside_on_a_cluster(
    commands: Commands, background: RedisCluster, redis_prefix: str
) -> None:
    stream = RedisStreamLedger(background, redis_prefix, claim_idle_s=30, resp=commands)
    await stream.read(10, 0)  # creates the group
    await background.xadd(stream.key, {b"v": b"999", b"e": b"\x00garbage"})
    assert await stream.read(10, 0) == []  # nothing to write ...
    assert await background.xlen(stream.dead_key) == 1  # ... it went to the dead stream
    assert await background.xlen(stream.key) == 0
    pending = await background.xpending(stream.key, "ledger-writers")
    assert pending["pending"] == 0


async def test_two_gateway_processes_and_their_writer_processes_share_a_cluster(
    cluster: Cluster, engine: AsyncEngine, pg_database: str, redis_prefix: str, tmp_path: Path
) -> None:
    fleet = await start_fleet({"alpha": Profile(completion_tokens=8)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})
    env = clean_env(
        DATABASE_URL=pg_database,
        REDIS_URL=cluster.url,
        REDIS_PREFIX=redis_prefix,
        GATEWAY_CATALOG=str(catalog),
        GATEWAY_LEDGER_FLUSH_INTERVAL_S="0.05",
    )
    replicas = [GatewayProcess(tmp_path, env), GatewayProcess(tmp_path, env)]
    try:
        for replica in replicas:
            await replica.ready()
            assert len(writer_pids(replica.proc.pid)) == 1  # `gateway ledger-writer` on a cluster
        answered = []
        async with httpx.AsyncClient(timeout=30) as client:
            for n in range(12):
                url = replicas[n % 2].url
                answer = await client.post(f"{url}/v1/chat/completions", json=plain_chat(f"q{n}"))
                assert answer.status_code == 200, answer.text
                answered.append(answer.json()["id"])
        await wait_for_ids(engine, answered, timeout_s=30)
        assert sorted(await stored_ids(engine)) == sorted(answered)  # each once, none else
        for replica in replicas:
            assert replica.terminate() in (0, -signal.SIGTERM), replica.output()[-2000:]
    finally:
        for replica in replicas:
            replica.terminate()
        await fleet.close()
