"""Leases on a real Redis: a worker admits a spend-limited key from a slice of its budget, tops
it up before it runs dry, gives it back on shutdown, drops it when the limit changes, and its
requests count in the periods they were admitted in, also across midnight."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.errors import PaymentRequired
from gateway.keys.limiter import Hold
from gateway.keys.pico import to_pico
from gateway.keys.redis_limiter import RedisLimiter
from gateway.resp import RespClient
from tests.integration.keys_fixtures import poll, redis_client
from tests.integration.test_keys_limiter import key


@pytest.fixture
async def resp(redis_url: str, redis_prefix: str) -> AsyncIterator[RespClient]:
    async with redis_client(redis_url, redis_prefix):  # removes the test's keys afterwards
        client = RespClient.from_url(redis_url)
        yield client
        await client.aclose()


async def raw_held(resp: RespClient, prefix: str, key_id: str) -> int:
    """The key's held total as Redis has it: requests' holds plus every lease."""
    return int(await resp.execute("GET", f"{prefix}key:{{{key_id}}}:held") or 0)


async def leases_in_redis(resp: RespClient, prefix: str, key_id: str) -> dict[str, int]:
    flat = await resp.execute("HGETALL", f"{prefix}key:{{{key_id}}}:holds")
    pairs = zip(flat[::2], flat[1::2], strict=True)
    return {k.decode(): int(v) for k, v in pairs if k.startswith(b"lease:")}


async def test_a_lease_is_topped_up_in_the_background_under_load(
    resp: RespClient, redis_prefix: str
):
    limiter = RedisLimiter(resp, redis_prefix, lease_share=0.1)
    leases = limiter.leases
    assert leases is not None
    capped = key(key_id="key-load", limit="1")
    worst, cost = Decimal("0.001"), Decimal("0.0005")

    async def one() -> None:
        hold = await limiter.admit(capped, worst)
        await limiter.settle(hold, cost, tokens=1)

    for _ in range(40):  # 40 waves of 20 concurrent requests: 800 requests, $0.4 of $1
        await asyncio.gather(*(one() for _ in range(20)))
    # Only the first wave waited for Redis (the first lease); every later one was admitted here
    # while top-ups ran in the background.
    assert leases.waited <= 20
    assert leases.topped_up >= 3
    usage = await limiter.usage(capped)
    assert usage.total == 800 * to_pico(cost)
    assert usage.held == 0
    # Redis holds exactly the lease's free part: every settle gave its worst case back.
    held = await raw_held(resp, redis_prefix, capped.id)
    assert held == leases.free_of(capped.id) > 0
    assert sum((await leases_in_redis(resp, redis_prefix, capped.id)).values()) == held


async def test_leases_are_given_back_on_shutdown(resp: RespClient, redis_prefix: str):
    first = RedisLimiter(resp, redis_prefix, lease_share=0.5)
    second = RedisLimiter(resp, redis_prefix, lease_share=0.5)  # another worker
    capped = key(key_id="key-shutdown", limit="1")
    for limiter in (first, second):
        hold = await limiter.admit(capped, Decimal("0.01"))
        await limiter.settle(hold, Decimal("0.01"), tokens=1)
    assert await raw_held(resp, redis_prefix, capped.id) > 0
    assert len(await leases_in_redis(resp, redis_prefix, capped.id)) == 2
    for limiter in (first, second):
        assert limiter.leases is not None
        await limiter.leases.aclose()
    assert await raw_held(resp, redis_prefix, capped.id) == 0
    assert await leases_in_redis(resp, redis_prefix, capped.id) == {}
    # Nothing given back twice: the whole limit less what was spent is there for one request.
    fresh = RedisLimiter(resp, redis_prefix)
    await fresh.admit(capped, Decimal("0.98"))
    with pytest.raises(PaymentRequired):
        await fresh.admit(capped, Decimal("0.000000000001"))


async def test_a_lowered_limit_retires_outstanding_leases(resp: RespClient, redis_prefix: str):
    first = RedisLimiter(resp, redis_prefix, lease_share=0.5)
    second = RedisLimiter(resp, redis_prefix, lease_share=0.5)
    assert first.leases is not None and second.leases is not None
    capped = key(key_id="key-lowered", limit="1")
    running = await first.admit(capped, Decimal("0.1"))  # a request still in flight
    done = await second.admit(capped, Decimal("0.1"))
    await second.settle(done, Decimal("0.1"), tokens=1)  # spent 0.1; second keeps a lease
    assert len(await leases_in_redis(resp, redis_prefix, capped.id)) == 2
    lowered = dataclasses.replace(capped, limit=Decimal("0.25"), version=2)
    # The first worker's key cache has the new limit: its old lease admits nothing more.
    with pytest.raises(PaymentRequired):
        await first.admit(lowered, Decimal("0.1"))  # 0.1 spent + 0.1 running + 0.1 > 0.25
    # ... and the second worker's loop retires its lease on its next turn.
    second.leases.tend(lambda _: lowered)
    await poll(
        lambda: second.leases is not None and second.leases.free_of(capped.id) == 0,
        timeout_s=5,
        what="the second worker's lease given back",
    )

    async def only_the_running_request_held() -> bool:
        return await raw_held(resp, redis_prefix, capped.id) == to_pico(Decimal("0.1"))

    await poll(only_the_running_request_held, timeout_s=5, what="the leases' free parts back")
    admitted = await first.admit(lowered, Decimal("0.05"))  # 0.1 + 0.1 + 0.05 fits
    with pytest.raises(PaymentRequired):
        await second.admit(lowered, Decimal("0.000000000001"))  # nothing more: exactly full
    await first.settle(running, Decimal("0.1"), tokens=1)
    await first.settle(admitted, Decimal("0.05"), tokens=1)
    usage = await first.usage(lowered)
    assert usage.total == to_pico(Decimal("0.25")) and usage.held == 0


async def test_periods_roll_over_midnight_with_a_lease(resp: RespClient, redis_prefix: str):
    now = [datetime(2026, 11, 30, 23, 59, 59, 500_000, tzinfo=UTC).timestamp()]
    limiter = RedisLimiter(resp, redis_prefix, lease_share=1.0, clock=lambda: now[0])
    assert limiter.leases is not None
    capped = key(key_id="key-night", limit="1", reset="daily")
    base = f"{redis_prefix}key:{{key-night}}:spend:"
    await resp.execute("SET", f"{base}d:2026-11-30", to_pico(Decimal("0.9")))  # spent today
    before = await limiter.admit(capped, Decimal("0.02"))  # takes the lease: the day's 0.1
    now[0] = datetime(2026, 12, 1, 0, 0, 0, 500_000, tzinfo=UTC).timestamp()
    after = await limiter.admit(capped, Decimal("0.02"))  # from the same lease, a new day
    assert limiter.leases.waited == 1 and before.lease == after.lease
    assert (before.at.day, after.at.day) == (30, 1)
    await limiter.settle(before, Decimal("0.01"), tokens=1)  # settled after midnight
    await limiter.settle(after, Decimal("0.01"), tokens=1)
    counters = {
        period: int(await resp.execute("GET", f"{base}{period}") or 0)
        for period in ("d:2026-11-30", "d:2026-12-01", "m:2026-11", "m:2026-12", "total")
    }
    cent = to_pico(Decimal("0.01"))
    assert counters == {
        "d:2026-11-30": to_pico(Decimal("0.9")) + cent,  # admitted before midnight
        "d:2026-12-01": cent,
        "m:2026-11": cent,
        "m:2026-12": cent,
        "total": 2 * cent,
    }
    # The new day's room is there at once (the old day's 0.91 no longer counts), whatever
    # the lease taken yesterday still holds.
    big = await limiter.admit(capped, Decimal("0.5"))
    assert isinstance(big, Hold)
    usage = await limiter.usage(capped)
    assert usage.daily == cent and usage.held == to_pico(Decimal("0.5"))


async def test_with_leases_off_every_request_holds_in_redis(resp: RespClient, redis_prefix: str):
    limiter = RedisLimiter(resp, redis_prefix)  # lease_share None: the per-request check
    assert limiter.leases is None
    capped = key(key_id="key-off", limit="1")
    hold = await limiter.admit(capped, Decimal("0.3"))
    assert hold.lease == "" and await raw_held(resp, redis_prefix, capped.id) == hold.amount
    await limiter.settle(hold, Decimal("0.1"), tokens=1)
    assert await raw_held(resp, redis_prefix, capped.id) == 0
