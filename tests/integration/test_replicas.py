"""Two `gateway serve` replicas on one Redis and one Postgres agree: an outage seen through one
steers the other within the stats refresh, a breaker one opens is respected by the other, a
key's spend limit holds across both under a burst split between them, a key disabled through one
is refused by the other within a second, and the ledger holds every generation of both once."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.chat.request import TEMPLATE_TOKENS
from gateway.db.models import generations, usage_hourly
from gateway.ledger.stream import GROUP, stream_key
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.conftest import REDIS_URL
from tests.integration.keys_fixtures import admin_headers, bearer, create_key
from tests.integration.ledger_fixtures import GatewayProcess, wait_for_ids, writer_pids
from tests.integration.replica_fixtures import (
    CLAIM_IDLE_S,
    STATS_FLUSH_S,
    STATS_REFRESH_S,
    Route,
    chat_body,
    cleanup_prefix,
    post_chat,
    replica_env,
    replicas,
    shared_database,
    write_replica_catalog,
)
from tests.support.polling import eventually

# A change seen by one replica reaches the other's routing within one flush and one refresh;
# the margin is for two busy cores, not for the design.
STEER_WITHIN_S = STATS_FLUSH_S + STATS_REFRESH_S + 2.5
PROPAGATION_S = 1.0  # a disabled key is refused by every replica within a second

OUTAGE = Route("test/outage", ("o-main", "o-backup"))
BREAKER = Route("test/breaker", ("b-main", "b-backup"))
# Completion dominates the price, so a request's worst case is close to what it costs: the
# burst then tests the limit itself, not the slack between hold and cost.
SPEND = Route("test/spend", ("s-only",), prompt_price="0.01", completion_price="100")
LEDGER = Route("test/ledger", ("l-only",))
KEYS = Route("test/keys", ("k-only",))
KILL = Route("test/kill", ("x-only",))
ROUTES = [OUTAGE, BREAKER, SPEND, LEDGER, KEYS, KILL]
COMPLETION_TOKENS = 8


@dataclass
class Pair:
    a: GatewayProcess
    b: GatewayProcess
    fleet: Fleet
    engine: AsyncEngine
    secret: str  # an unlimited key for traffic
    client: httpx.AsyncClient
    env: dict[str, str]
    tmp: Path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    tmp = tmp_path_factory.mktemp("replicas")
    profile = Profile(completion_tokens=COMPLETION_TOKENS, ttft_ms=2)
    names = [p for route in ROUTES for p in route.providers]
    fleet = await start_fleet({name: profile for name in names})
    prefix = f"gwtest:{uuid.uuid4().hex[:12]}:"
    catalog = write_replica_catalog(tmp / "catalog.toml", fleet, ROUTES)
    try:
        async with shared_database() as database_url:
            env = replica_env(
                database_url,
                prefix,
                catalog,
                # Failures never open a breaker here: the outage test sees the stats alone.
                GATEWAY_ROUTING_BREAKER_FAILURES="1000",
            )
            engine = create_async_engine(database_url)
            try:
                async with (
                    replicas(tmp, env) as (a, b),
                    httpx.AsyncClient(base_url=a.url, timeout=30) as client,
                ):
                    _, secret = await create_key(client, name="traffic")
                    await known_to_all(client, [a.url, b.url], secret)
                    yield Pair(a, b, fleet, engine, secret, client, env, tmp)
            finally:
                await engine.dispose()
    finally:
        await fleet.close()
        await cleanup_prefix(prefix)


async def known_to_all(client: httpx.AsyncClient, urls: list[str], secret: str) -> None:
    """A key created through one replica reaches the others within a key refresh: wait for it
    rather than race it (a request sent there at once may get 401)."""

    async def known() -> bool:
        for url in urls:
            answer = await client.get(f"{url}/api/v1/key", headers=bearer(secret))
            if answer.status_code != 200:
                return False
        return True

    await eventually(known, timeout_s=10, what="the new key on every replica", interval_s=0.05)


async def served_by(pair: Pair, url: str, route: Route, n: int) -> list[str]:
    """The provider that served each of `n` requests through the replica at `url`."""
    providers = []
    for i in range(n):
        # Cheapest first (balanced spreads load by price), healthy before gated.
        body = chat_body(route.model, f"{i}", provider={"sort": "price"})
        answer = await post_chat(pair.client, url, body, pair.secret)
        assert answer.status_code == 200, answer.text
        providers.append(answer.json()["provider"])
    return providers


async def endpoint_view(pair: Pair, url: str, route: Route, provider: str) -> dict:
    """What the replica at `url` currently knows of one endpoint (its live stats snapshot)."""
    author, slug = route.model.split("/")
    listing = await pair.client.get(f"{url}/api/v1/models/{author}/{slug}/endpoints")
    assert listing.status_code == 200, listing.text
    for entry in listing.json()["data"]["endpoints"]:
        if entry["provider_name"] == provider:
            return entry["stats"] or {}
    raise AssertionError(f"{provider} not listed")


def requests_to(pair: Pair, provider: str) -> int:
    return pair.fleet.stats()[provider].requests


async def test_an_outage_seen_through_one_replica_steers_the_other(pair: Pair) -> None:
    main, backup = OUTAGE.providers
    # Before: both replicas send this model to its cheapest provider.
    assert await served_by(pair, pair.b.url, OUTAGE, 1) == [main]
    await pair.fleet.set_profile(main, down=True)
    try:
        # Through A only: every attempt at `main` fails (503) and falls back to `backup`.
        # Three failures make an outage (GATEWAY_ROUTING_OUTAGE_MIN_REQUESTS); A gates `main`
        # itself after that, so it is sent no more than that.
        for _ in range(10):
            if requests_to(pair, main) >= 1 + 3:
                break
            assert await served_by(pair, pair.a.url, OUTAGE, 1) == [backup]
        seen_at = time.monotonic()

        async def b_sees_it() -> bool:
            stats = await endpoint_view(pair, pair.b.url, OUTAGE, main)
            return (stats.get("uptime_last_5m") or 100.0) < 70.0

        await eventually(b_sees_it, timeout_s=30, what="replica B to see the outage")
        took = time.monotonic() - seen_at
        assert took < STEER_WITHIN_S, f"replica B saw the outage after {took:.2f} s"
        before = requests_to(pair, main)
        # B never saw `main` fail itself, yet sends nothing there any more.
        assert await served_by(pair, pair.b.url, OUTAGE, 5) == [backup] * 5
        assert requests_to(pair, main) == before
    finally:
        await pair.fleet.set_profile(main, down=False)


async def test_a_breaker_opened_by_one_replica_is_respected_by_the_other(pair: Pair) -> None:
    main, backup = BREAKER.providers
    # A 429 with Retry-After opens the breaker (and counts as neither success nor failure, so
    # the shared stats show no outage: only the shared breaker can steer B).
    await pair.fleet.set_profile(main, failures={"http_429": 1.0}, retry_after_s=30)
    try:
        assert await served_by(pair, pair.a.url, BREAKER, 1) == [backup]
        opened_at = time.monotonic()
        assert requests_to(pair, main) == 1

        async def b_respects_it() -> bool:
            stats = await endpoint_view(pair, pair.b.url, BREAKER, main)
            return (stats.get("breaker") or {}).get("phase") == "open"

        await eventually(b_respects_it, timeout_s=30, what="replica B to adopt the breaker")
        took = time.monotonic() - opened_at
        assert took < STEER_WITHIN_S, f"replica B adopted the breaker after {took:.2f} s"
        assert await served_by(pair, pair.b.url, BREAKER, 5) == [backup] * 5
        assert requests_to(pair, main) == 1  # B never called it
    finally:
        await pair.fleet.set_profile(main, failures={"http_429": 0.0})


def worst_case(body: bytes) -> Decimal:
    """What one request holds against its key: its prompt bound (body bytes plus the template
    allowance) and its completion cap at the endpoint's prices (USD per 1M tokens)."""
    prompt = (len(body) + TEMPLATE_TOKENS) * Decimal(SPEND.prompt_price)
    completion = COMPLETION_TOKENS * Decimal(SPEND.completion_price)
    return (prompt + completion) / 1_000_000


async def test_a_spend_limit_holds_across_replicas_under_a_burst(pair: Pair) -> None:
    body = chat_body(SPEND.model, "burst", max_tokens=COMPLETION_TOKENS)
    most = worst_case(body)
    limit = (most * 30).quantize(Decimal("0.000001"))  # about 30 of the 100 fit
    key_id, secret = await create_key(pair.client, name="burst", limit=str(limit))
    await known_to_all(pair.client, [pair.a.url, pair.b.url], secret)
    targets = [pair.a.url, pair.b.url] * 50  # 100 at once, half through each replica

    async def one(url: str) -> tuple[str, int, str | None]:
        answer = await post_chat(pair.client, url, body, secret)
        assert answer.status_code in (200, 402), answer.text
        gen = answer.json()["id"] if answer.status_code == 200 else None
        return url, answer.status_code, gen

    results = await asyncio.gather(*(one(url) for url in targets))
    answered = [gen for _, status, gen in results if status == 200 and gen]
    assert any(s == 402 for _, s, _ in results), "the limit never refused anything"
    for url in (pair.a.url, pair.b.url):
        assert any(u == url and s == 200 for u, s, _ in results), f"{url} answered nothing"
    await wait_for_ids(pair.engine, answered, timeout_s=60)
    async with pair.engine.connect() as conn:
        spent = await conn.scalar(
            select(func.sum(generations.c.cost)).where(generations.c.api_key_id == key_id)
        )
    assert spent is not None
    assert spent <= limit + most, f"spent {spent} against a limit of {limit} (+{most})"
    # The refusals were the limit's, not an accident: most of it was used.
    assert spent >= limit - 2 * most


async def test_a_key_disabled_through_one_replica_is_refused_by_the_other(pair: Pair) -> None:
    key_id, secret = await create_key(pair.client, name="to-disable")
    body = chat_body(KEYS.model)

    async def b_accepts() -> bool:
        answer = await post_chat(pair.client, pair.b.url, body, secret)
        assert answer.status_code in (200, 401), answer.text
        return answer.status_code == 200

    await eventually(b_accepts, timeout_s=10, what="the new key on replica B")
    disabled = await pair.client.patch(
        f"{pair.a.url}/api/v1/keys/{key_id}", json={"disabled": True}, headers=admin_headers()
    )
    assert disabled.status_code == 200, disabled.text

    async def b_refuses() -> bool:
        return not await b_accepts()

    took = await eventually(b_refuses, timeout_s=10, what="replica B to refuse the key")
    assert took < PROPAGATION_S, f"replica B refused the key after {took:.3f} s"


async def test_the_ledger_has_every_generation_of_both_replicas_once(pair: Pair) -> None:
    answered: dict[str, str] = {}
    for i in range(20):
        url = (pair.a.url, pair.b.url)[i % 2]
        answer = await post_chat(pair.client, url, chat_body(LEDGER.model, f"{i}"), pair.secret)
        assert answer.status_code == 200, answer.text
        answered[answer.json()["id"]] = url
    await wait_for_ids(pair.engine, list(answered), timeout_s=60)
    async with pair.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(generations.c.id, func.count())
                .where(generations.c.id.in_(list(answered)))
                .group_by(generations.c.id)
            )
        ).all()
        counted = await conn.scalar(
            select(func.sum(usage_hourly.c.requests)).where(usage_hourly.c.model == LEDGER.model)
        )
    assert {gen: n for gen, n in rows} == dict.fromkeys(answered, 1)
    assert set(answered.values()) == {pair.a.url, pair.b.url}
    assert counted == len(answered)  # the rollup counted each once


@dataclass
class Sent:
    replica: str
    started: float
    ended: float
    status: int | None  # None: no answer (the connection was cut)
    generation: str | None


async def load(
    pair: Pair, url: str, concurrency: int, stop: asyncio.Event, log: list[Sent]
) -> None:
    """`concurrency` clients sending one request after another to `url` until `stop`."""

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            started = time.monotonic()
            body = chat_body(KILL.model, f"{n}-{i}")
            try:
                answer = await post_chat(pair.client, url, body, pair.secret)
            except httpx.TransportError:
                log.append(Sent(url, started, time.monotonic(), None, None))
                return  # the replica is gone: this client stops
            gen = answer.json().get("id") if answer.status_code == 200 else None
            log.append(Sent(url, started, time.monotonic(), answer.status_code, gen))

    await asyncio.gather(*(client(n) for n in range(concurrency)))


def consumer_holding(consumers: list[dict], pid: int) -> int:
    """Entries held (read, unacked) by the ledger writer process `pid`."""
    for consumer in consumers:
        name = consumer["name"]
        name = name.decode() if isinstance(name, bytes) else name
        if f"-{pid}-" in name:
            return int(consumer["pending"])
    return 0


async def test_a_replica_killed_under_load_affects_only_its_in_flight_requests(
    pair: Pair,
) -> None:
    """Replica C is SIGKILLed (server, worker and its ledger writer) while both it and A serve
    steady traffic: A answers everything without a pause as long as the claim interval, C's
    in-flight requests are the only ones lost, and everything C answered reaches the ledger
    once (what its writer held is claimed by A's writer)."""
    # C's writer lingers a second over every batch it reads: it is holding entries when killed.
    c = GatewayProcess(
        pair.tmp, {**pair.env, "GATEWAY_LEDGER_FLUSH_INTERVAL_S": "1.0"}, "--no-migrate"
    )
    redis = Redis.from_url(REDIS_URL)
    stop_a, stop_c = asyncio.Event(), asyncio.Event()
    log: list[Sent] = []
    try:
        await c.ready()
        (c_writer,) = writer_pids(c.proc.pid)
        key = stream_key(pair.env["REDIS_PREFIX"])
        a_load = asyncio.create_task(load(pair, pair.a.url, 4, stop_a, log))
        c_load = asyncio.create_task(load(pair, c.url, 8, stop_c, log))

        async def c_writer_holds() -> bool:
            answered = sum(1 for s in log if s.replica == c.url and s.status == 200)
            consumers = await redis.xinfo_consumers(key, GROUP)
            return answered >= 30 and consumer_holding(consumers, c_writer) > 0

        await eventually(c_writer_holds, timeout_s=60, what="C's writer holding entries")
        killed_at = time.monotonic()
        c.crash()
        stop_c.set()
        await asyncio.wait_for(c_load, timeout=60)
        c_answered = [s.generation for s in log if s.replica == c.url and s.generation]
        # Everything C answered reaches the ledger: A's writer claims what C's writer held.
        engine = pair.engine
        await wait_for_ids(engine, c_answered, timeout_s=60)

        async def claimed() -> bool:
            consumers = await redis.xinfo_consumers(key, GROUP)
            return consumer_holding(consumers, c_writer) == 0

        await eventually(claimed, timeout_s=30, what="C's pending entries claimed")
        # A keeps serving past a claim interval after the kill.
        await eventually(
            lambda: time.monotonic() > killed_at + 2 * CLAIM_IDLE_S, timeout_s=60, what="time"
        )
        stop_a.set()
        await asyncio.wait_for(a_load, timeout=60)
    finally:
        stop_a.set()
        stop_c.set()
        await redis.aclose()
        if c.proc.poll() is None:
            c.crash()

    a_sent = [s for s in log if s.replica == pair.a.url]
    c_sent = [s for s in log if s.replica == c.url]
    assert a_sent and all(s.status == 200 for s in a_sent), "A failed requests"
    # Only C's in-flight requests went unanswered: at most one per client, and none of them
    # started after the kill had been noticed.
    cut = [s for s in c_sent if s.status != 200]
    assert all(s.status is None for s in cut), [s.status for s in cut]
    assert all(s.started < killed_at for s in cut) and len(cut) <= 8
    # A never paused as long as the claim interval: not one request, not between answers.
    around = sorted(s.ended for s in a_sent if s.ended > killed_at - 1.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(around)]
    slowest = max(s.ended - s.started for s in a_sent if s.ended > killed_at)
    assert max(gaps, default=0.0) < CLAIM_IDLE_S, f"A paused {max(gaps):.2f} s"
    assert slowest < CLAIM_IDLE_S, f"an A request took {slowest:.2f} s"
    answered = [s.generation for s in log if s.generation]
    async with pair.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(generations.c.id, func.count())
                .where(generations.c.id.in_(answered))
                .group_by(generations.c.id)
            )
        ).all()
    # A's answers too (its own writer's), each once.
    await wait_for_ids(pair.engine, answered, timeout_s=60)
    assert all(n == 1 for _, n in rows)
