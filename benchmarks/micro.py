"""Micro-benchmarks of the request path's pieces, in process: what one call of each costs.

Pure pieces (routing decision, auth, decoding, building the ledger event, the whole service
without I/O) need nothing; the client pieces (limiter, XADD, upstream call, ledger write) need
the Redis, Postgres and upstream that `benchmarks.overhead` starts.
Run alone: `.venv/bin/python -m benchmarks.micro` (pure pieces; `--redis URL` adds Redis's).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import uvloop

from benchmarks.bench_planner import catalog_of, snapshot_of
from benchmarks.harness.stack import CHAT_BODY, MODEL, catalog_toml
from benchmarks.harness.upstream import REQUEST_BODY, UPSTREAM_BODY
from gateway.chat.request import decode_chat_request
from gateway.chat.service import ChatService
from gateway.keys.cache import KeyCache
from gateway.keys.caller import Caller
from gateway.keys.hashing import mint_secret
from gateway.keys.keyring import Keyring
from gateway.keys.limiter import Hold
from gateway.keys.memory_limiter import InProcessLimiter
from gateway.keys.record import ApiKey, RateLimit
from gateway.ledger.codec import encode_event
from gateway.ledger.events import GenerationEvent
from gateway.ledger.queue import InProcessLedger
from gateway.ledger.rows import rows_of
from providers.catalog import Catalog, parse_catalog
from providers.pricing import cost_of
from providers.provider import Completion, Timeouts, UpstreamCall
from providers.usage import normalize_usage
from routing.attempts import Attempt
from routing.executor import Executor
from routing.planner import Planner
from routing.preferences import RouteRequest


@dataclass(frozen=True)
class Micro:
    name: str
    best_us: float  # the least disturbed run
    median_us: float
    note: str = ""


def timed(fn: Callable[[], object], rounds: int, repeats: int) -> tuple[float, float]:
    """(best, median) µs per call over `repeats` runs of `rounds` calls."""
    runs: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        runs.append((time.perf_counter() - start) / rounds * 1e6)
    return min(runs), statistics.median(runs)


async def timed_async(
    fn: Callable[[], Awaitable[object]], rounds: int, repeats: int
) -> tuple[float, float]:
    """(best, median) CPU µs per awaited call (process time: the client's own cost)."""
    runs: list[float] = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(rounds):
            await fn()
        runs.append((time.process_time() - start) / rounds * 1e6)
    return min(runs), statistics.median(runs)


def bench_catalog() -> Catalog:
    import tomllib

    return parse_catalog(tomllib.loads(catalog_toml(9)), env={})


def bench_key(secret_hash: str = "") -> ApiKey:
    now = datetime.now(UTC)
    return ApiKey(
        "key-micro",
        "micro",
        secret_hash,
        "sk-gw-micro",
        now,
        now,
        limit=Decimal(100000),
        rate_limit=RateLimit(1_000_000_000, 2_000_000_000),
    )


def sample_event(catalog: Catalog) -> GenerationEvent:
    endpoint = catalog.endpoints[0]
    now = datetime.now(UTC)
    event = GenerationEvent(
        id=f"gen-micro-{random.getrandbits(64):x}",
        created_at=now,
        requested_model=MODEL,
        model=MODEL,
        mode="balanced",
        streamed=False,
        api_key_id="key-micro",
        provider=endpoint.provider,
        endpoint_id=endpoint.id,
    )
    event.usage = normalize_usage({"prompt_tokens": 12, "completion_tokens": 9})
    event.cost = cost_of(event.usage, endpoint.price)
    event.attempts = [Attempt(endpoint.id, endpoint.provider, now, 0.0004, None)]
    event.latency_s = 0.0005
    return event


class InstantProvider:
    """An upstream that answers at once, in process: the service's cost without any I/O."""

    kind = "openai"

    async def complete(self, call: UpstreamCall) -> Completion:
        import msgspec

        body = msgspec.json.decode(UPSTREAM_BODY)
        return Completion(body, normalize_usage(body.get("usage")), 0.0, 0.0)

    def stream(self, call: UpstreamCall) -> Any:
        raise NotImplementedError


def pure_micros(rounds: int, repeats: int) -> list[Micro]:
    results: list[Micro] = []
    catalog = bench_catalog()
    planner = Planner(catalog, rng=random.Random(1))
    route = decode_chat_request(CHAT_BODY).route
    results.append(
        Micro(
            "routing decision (3 endpoints)", *timed(lambda: planner.plan(route), rounds, repeats)
        )
    )
    big = catalog_of(20)
    snapshot = snapshot_of(big)
    big_planner = Planner(big, lambda: snapshot, rng=random.Random(1))
    big_route = RouteRequest("openai/gpt-oss-20b", "balanced", prompt_tokens=1200, max_tokens=512)
    results.append(
        Micro(
            "routing decision (20 endpoints, live stats)",
            *timed(lambda: big_planner.plan(big_route), rounds, repeats),
        )
    )
    minted = mint_secret()
    cache = KeyCache()
    cache.put([bench_key(minted.key_hash)])
    keyring = Keyring(cache, None, None, None, auth_required=True, admin_token=None)  # type: ignore[arg-type]
    header = f"Bearer {minted.secret}"
    results.append(
        Micro(
            "auth (bearer -> cached key)",
            *timed(lambda: keyring.authenticate(header), rounds, repeats),
        )
    )
    results.append(
        Micro(
            "decode request body", *timed(lambda: decode_chat_request(CHAT_BODY), rounds, repeats)
        )
    )
    service = ChatService(planner, None, InProcessLedger())  # type: ignore[arg-type]
    chat_request = decode_chat_request(CHAT_BODY)
    plan = planner.plan(chat_request.route)
    caller = Caller(api_key_id="key-micro")
    endpoint = catalog.endpoints[0]
    usage = normalize_usage({"prompt_tokens": 12, "completion_tokens": 9})
    now = datetime.now(UTC)

    def build_event() -> GenerationEvent:
        event = service._event("gen-micro", chat_request, plan, caller, False, now)
        event.provider, event.endpoint_id = endpoint.provider, endpoint.id
        event.usage, event.cost = usage, cost_of(usage, endpoint.price)
        event.attempts = [Attempt(endpoint.id, endpoint.provider, now, 0.0004, None)]
        event.finish_reason = event.native_finish_reason = "stop"
        event.latency_s = event.ttft_s = 0.0005
        return event

    results.append(Micro("build ledger event (incl. cost)", *timed(build_event, rounds, repeats)))
    event = build_event()
    results.append(
        Micro(
            "encode ledger event (XADD payload)",
            *timed(lambda: encode_event(event), rounds, repeats),
        )
    )
    results.append(
        Micro(
            "ledger rows of an event (writer side)", *timed(lambda: rows_of(event), rounds, repeats)
        )
    )
    results.append(service_micro(catalog, rounds, repeats))
    return results


def service_micro(catalog: Catalog, rounds: int, repeats: int) -> Micro:
    """ChatService.complete end to end with an instant provider, in-process limiter and ledger."""
    planner = Planner(catalog, rng=random.Random(1))
    executor = Executor({"openai": InstantProvider()}, catalog.secret_for, Timeouts())
    ledger = InProcessLedger()
    service = ChatService(planner, executor, ledger, InProcessLimiter())
    caller = Caller(api_key_id="key-micro", key=bench_key())

    async def once() -> None:
        await service.complete(decode_chat_request(CHAT_BODY), caller)
        ledger._waiting.clear()  # keep the in-process queue from growing

    async def run() -> tuple[float, float]:
        return await timed_async(once, rounds // 4, repeats)

    best, median = uvloop.run(run())
    return Micro("chat service, no I/O (decode..encode)", best, median, "instant provider")


async def redis_micros(redis_url: str, rounds: int, repeats: int) -> list[Micro]:
    """Client-side CPU of the request path's Redis calls (the lean `RespClient`)."""
    from redis.asyncio import Redis

    from gateway.keys.redis_limiter import RedisLimiter
    from gateway.ledger.stream import RedisStreamLedger
    from gateway.resp import Batch, RespClient

    results: list[Micro] = []
    catalog = bench_catalog()
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    prefix = f"bench-micro-{random.getrandbits(32):x}:"
    try:
        limiter = RedisLimiter(resp, prefix)
        stream = RedisStreamLedger(redis, prefix, claim_idle_s=30, resp=resp)
        key = bench_key()
        event = sample_event(catalog)
        holds: list[Hold] = []

        async def admit() -> None:
            holds.append(await limiter.admit(key, Decimal("0.001")))

        best, median = await timed_async(admit, rounds, repeats)
        results.append(Micro("Redis: limiter admit (1 script call)", best, median, "client CPU"))

        async def end() -> None:
            batch = Batch()  # as Recorder.end
            stream.emit_into(batch, event)
            limiter.settle_into(batch, holds.pop(), Decimal("0.0000024"), 21)
            await batch.send()

        best, median = await timed_async(end, rounds, repeats)
        results.append(
            Micro("Redis: end of request (XADD + settle, 1 round trip)", best, median, "client CPU")
        )
        for _ in range(rounds * repeats):
            await admit()

        async def settle() -> None:
            await limiter.settle(holds.pop(), Decimal("0.0000024"), 21)

        best, median = await timed_async(settle, rounds, repeats)
        results.append(Micro("Redis: limiter settle (1 script call)", best, median, "client CPU"))
        best, median = await timed_async(lambda: stream.emit(event), rounds, repeats)
        results.append(Micro("Redis: ledger XADD", best, median, "client CPU"))
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await resp.aclose()
    return results


async def io_micros(
    upstream_url: str, redis_url: str, database_url: str, rounds: int, repeats: int
) -> list[Micro]:
    """Client-side CPU of each I/O the request path does, against the real servers."""
    import aiohttp
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.ledger.store import LedgerStore
    from gateway.ledger.upkeep import upkeep_for

    catalog = bench_catalog()
    results = await redis_micros(redis_url, rounds, repeats)
    async with aiohttp.ClientSession() as session:

        async def post() -> None:
            async with session.post(
                upstream_url, data=REQUEST_BODY, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()

        best, median = await timed_async(post, rounds, repeats)
        results.append(Micro("aiohttp: POST to the upstream", best, median, "client CPU"))
    results += await upstream_micros(upstream_url, rounds, repeats)
    engine = create_async_engine(database_url)
    try:
        store = LedgerStore(engine, upkeep_for(engine, 90))
        for batch in (1, 100):
            per_run = max(rounds // (batch * 8), 3)
            await store.write([rows_of(sample_event(catalog))])  # partitions, statements
            runs = []
            for _ in range(max(repeats // 2, 2)):
                batches = [
                    [rows_of(sample_event(catalog)) for _ in range(batch)] for _ in range(per_run)
                ]
                start = time.process_time()
                for rows in batches:
                    await store.write(rows)
                runs.append((time.process_time() - start) / (per_run * batch) * 1e6)
            results.append(
                Micro(
                    f"Postgres: ledger write per generation, batch {batch}",
                    min(runs),
                    statistics.median(runs),
                    "writer CPU (its own process under `gateway serve`)",
                )
            )
    finally:
        await engine.dispose()
    return results


async def upstream_micros(upstream_url: str, rounds: int, repeats: int) -> list[Micro]:
    """Client CPU of one upstream call with the gateway's own client, bare and in the adapter."""
    import msgspec

    from providers.http1 import HttpClient
    from providers.openai_compatible import OpenAICompatibleProvider

    results: list[Micro] = []
    headers = {"Content-Type": "application/json"}
    base_url = upstream_url.removesuffix("/chat/completions")
    endpoint = bench_catalog().endpoints[0]
    endpoint = msgspec.structs.replace(endpoint, base_url=base_url)
    call = UpstreamCall(endpoint, msgspec.json.decode(REQUEST_BODY), None)
    async with HttpClient() as client:

        async def post() -> None:
            async with await client.request("POST", upstream_url, headers, REQUEST_BODY) as r:
                await r.read()

        best, median = await timed_async(post, rounds, repeats)
        results.append(Micro("http1: POST to the upstream", best, median, "client CPU"))
        adapter = OpenAICompatibleProvider(client)
        best, median = await timed_async(lambda: adapter.complete(call), rounds, repeats)
        results.append(Micro("adapter.complete on http1", best, median, "client CPU"))
    return results


def markdown(results: list[Micro]) -> str:
    lines = ["| piece | best µs | median µs | note |", "|---|---:|---:|---|"]
    for m in results:
        lines.append(f"| {m.name} | {m.best_us:,.1f} | {m.median_us:,.1f} | {m.note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--redis", metavar="URL", help="also the Redis pieces, on this server")
    args = parser.parse_args()
    results = pure_micros(args.rounds, args.repeats)
    if args.redis:
        results += uvloop.run(redis_micros(args.redis, args.rounds, args.repeats))
    print(markdown(results))


if __name__ == "__main__":
    main()
