"""Per-call client CPU of the upstream and Redis calls the hardening of issue #16 touched.

Run against the benchmarks' own upstream and a Redis, on the tree that `PYTHONPATH` puts first
(so an exported copy of an older commit can be measured the same way, interleaved):
`python -m benchmarks.hardening --upstream http://127.0.0.1:P/v1 --redis redis://...`.
"""

from __future__ import annotations

import argparse
import json
import random
from decimal import Decimal
from typing import Any

import msgspec
import uvloop

from benchmarks.harness.upstream import REQUEST_BODY
from benchmarks.micro import Micro, bench_catalog, bench_key, sample_event, timed_async


async def measure(upstream: str, redis_url: str, rounds: int, repeats: int) -> list[Micro]:
    from redis.asyncio import Redis

    from gateway.keys.redis_limiter import RedisLimiter
    from gateway.ledger.stream import RedisStreamLedger
    from gateway.resp import Batch, RespClient
    from providers.http1 import HttpClient
    from providers.openai_compatible import OpenAICompatibleProvider
    from providers.provider import UpstreamCall

    results: list[Micro] = []
    url = f"{upstream}/chat/completions"
    headers = {"Content-Type": "application/json"}
    endpoint = msgspec.structs.replace(bench_catalog().endpoints[0], base_url=upstream)
    call = UpstreamCall(endpoint, msgspec.json.decode(REQUEST_BODY), None)
    async with HttpClient() as client:

        async def post() -> None:
            async with await client.request("POST", url, headers, REQUEST_BODY) as response:
                await response.read()

        results.append(Micro("http1: POST", *await timed_async(post, rounds, repeats)))
        adapter = OpenAICompatibleProvider(client)
        complete = await timed_async(lambda: adapter.complete(call), rounds, repeats)
        results.append(Micro("adapter.complete", *complete))

        async def stream() -> None:
            async for _ in adapter.stream(call):  # 8 chunks and the usage one
                pass

        streamed = await timed_async(stream, rounds // 4, repeats)
        results.append(Micro("adapter.stream (8 chunks)", *streamed))

    try:
        from providers.httpx_transport import HttpxTransport
    except ImportError:  # an older tree, measured for comparison, has no such transport
        HttpxTransport = None  # type: ignore[assignment,misc]
    if HttpxTransport is not None:
        transport = HttpxTransport()
        try:
            adapter = OpenAICompatibleProvider(transport)
            on_httpx = await timed_async(lambda: adapter.complete(call), rounds // 4, repeats)
            results.append(Micro("adapter.complete on httpx", *on_httpx))
        finally:
            await transport.aclose()

    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    prefix = f"bench-hardening-{random.getrandbits(32):x}:"
    try:
        limiter = RedisLimiter(resp, prefix)
        ledger = RedisStreamLedger(redis, prefix, claim_idle_s=30, resp=resp)
        key, event = bench_key(), sample_event(bench_catalog())
        holds: list[Any] = []

        async def admit() -> None:
            holds.append(await limiter.admit(key, Decimal("0.001")))

        results.append(Micro("RESP: limiter admit", *await timed_async(admit, rounds, repeats)))

        async def end() -> None:
            batch = Batch()
            ledger.emit_into(batch, event)
            limiter.settle_into(batch, holds.pop(), Decimal("0.0000024"), 21)
            await batch.send()

        ended = await timed_async(end, rounds, repeats)
        results.append(Micro("RESP: end of request (XADD + settle)", *ended))
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await resp.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hardening", description=__doc__)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:P/v1")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = uvloop.run(measure(args.upstream, args.redis, args.rounds, args.repeats))
    print(json.dumps({m.name: round(m.best_us, 1) for m in results}))


if __name__ == "__main__":
    main()
