"""The Redis limiter on a real Redis: atomic holds under concurrency, exact money beyond what a
float holds, settlement, expiry of a dead request's hold, request and token rate limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.errors import PaymentRequired, RateLimited
from gateway.keys.limiter import Hold
from gateway.keys.pico import to_pico
from gateway.keys.record import ApiKey, RateLimit
from gateway.keys.redis_limiter import RedisLimiter
from gateway.resp import RespClient
from tests.integration.keys_fixtures import poll, redis_client

NOW = datetime.now(UTC)


def key(
    key_id: str = "key-test",
    limit: str | None = None,
    reset: str = "monthly",
    rpm: int | None = None,
    tpm: int | None = None,
) -> ApiKey:
    return ApiKey(
        id=key_id,
        name="test",
        key_hash="0" * 64,
        prefix="sk-gw-test",
        created_at=NOW,
        updated_at=NOW,
        limit=None if limit is None else Decimal(limit),
        limit_reset=reset,  # type: ignore[arg-type]
        rate_limit=RateLimit(rpm, tpm),
    )


@pytest.fixture
async def resp(redis_url: str, redis_prefix: str) -> AsyncIterator[RespClient]:
    async with redis_client(redis_url, redis_prefix):  # removes the test's keys afterwards
        client = RespClient.from_url(redis_url)
        yield client
        await client.aclose()


async def test_a_burst_of_admits_holds_no_more_than_the_limit(resp: RespClient, redis_prefix: str):
    limiter = RedisLimiter(resp, redis_prefix)
    capped = key(limit="1")
    results = await asyncio.gather(
        *(limiter.admit(capped, Decimal("0.03")) for _ in range(100)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, Hold)]
    refused = [r for r in results if isinstance(r, PaymentRequired)]
    assert len(admitted) == 33 and len(refused) == 67
    assert (await limiter.usage(capped)).held == to_pico(Decimal("0.99"))
    body = refused[0].metadata
    assert body["limit"] == "1" and body["required"] == "0.03" and body["held"] == "0.99"


async def test_settling_releases_the_hold_and_adds_the_exact_cost(
    resp: RespClient, redis_prefix: str
):
    limiter = RedisLimiter(resp, redis_prefix)
    capped = key(limit="0.5", reset="daily")
    hold = await limiter.admit(capped, Decimal("0.4"))
    with pytest.raises(PaymentRequired):
        await limiter.admit(capped, Decimal("0.2"))
    await limiter.settle(hold, Decimal("0.000000123456789012"), tokens=10)
    await limiter.settle(hold, Decimal("1"), tokens=10)  # a second settle does nothing
    usage = await limiter.usage(capped)
    expected = to_pico(Decimal("0.000000123456789012"))
    assert (usage.total, usage.daily, usage.weekly, usage.monthly) == (expected,) * 4
    assert usage.held == 0
    await limiter.admit(capped, Decimal("0.2"))  # room again


async def test_money_beyond_float_precision_is_compared_exactly(
    resp: RespClient, redis_prefix: str
):
    # 10^6 USD is 10^18 pico-USD, far past 2^53: a float comparison would blur the last digit.
    limiter = RedisLimiter(resp, redis_prefix)
    rich = key(limit="1000000", reset="none")
    spent = await limiter.admit(rich, Decimal("999999.999999999998"))
    await limiter.settle(spent, Decimal("999999.999999999998"), tokens=0)
    with pytest.raises(PaymentRequired):
        await limiter.admit(rich, Decimal("0.000000000003"))
    await limiter.admit(rich, Decimal("0.000000000002"))  # exactly to the limit
    with pytest.raises(PaymentRequired):
        await limiter.admit(rich, Decimal("0.000000000001"))
    assert (await limiter.usage(rich)).total == to_pico(Decimal("999999.999999999998"))


async def test_a_dead_requests_hold_expires(resp: RespClient, redis_prefix: str):
    limiter = RedisLimiter(resp, redis_prefix, hold_ttl_s=0.3)
    capped = key(limit="1")
    await limiter.admit(capped, Decimal("1"))  # never settled: the request "died"
    started = time.monotonic()
    with pytest.raises(PaymentRequired):
        await limiter.admit(capped, Decimal("1"))

    async def admitted() -> bool:
        try:
            await limiter.admit(capped, Decimal("1"))
        except PaymentRequired:
            return False
        return True

    await poll(admitted, timeout_s=3, what="the expired hold released")
    assert time.monotonic() - started >= 0.25


async def test_requests_per_minute_answer_429_with_the_wait(resp: RespClient, redis_prefix: str):
    limiter = RedisLimiter(resp, redis_prefix)
    limited = key(rpm=3)
    holds = [await limiter.admit(limited, Decimal(0)) for _ in range(3)]
    assert [h.headers["X-RateLimit-Remaining"] for h in holds] == ["2", "1", "0"]
    assert {h.headers["X-RateLimit-Limit"] for h in holds} == {"3"}
    before_ms = time.time() * 1000
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(limited, Decimal(0))
    headers = refused.value.headers
    assert headers["Retry-After"] == "20"  # one request per 20 s after a burst of 3
    assert headers["X-RateLimit-Remaining"] == "0"
    reset_ms = int(headers["X-RateLimit-Reset"])
    assert before_ms + 19_000 <= reset_ms <= before_ms + 20_500


async def test_tokens_per_minute_refuse_once_the_bucket_is_overdrawn(
    resp: RespClient, redis_prefix: str
):
    limiter = RedisLimiter(resp, redis_prefix)
    limited = key(tpm=100)
    hold = await limiter.admit(limited, Decimal(0))
    await limiter.settle(hold, Decimal(0), tokens=150)  # 1.5 minutes' worth
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(limited, Decimal(0))
    assert refused.value.headers["Retry-After"] == "30"
    assert "tokens" in refused.value.message
    other = key("key-other", tpm=100)
    await limiter.admit(other, Decimal(0))  # limits are per key


async def test_a_settlement_counts_in_the_periods_its_hold_was_admitted_in(
    resp: RespClient, redis_prefix: str
):
    limiter = RedisLimiter(resp, redis_prefix)
    capped = key(key_id="key-midnight", limit="1", reset="daily")
    hold = await limiter.admit(capped, Decimal("0.5"))
    hold.at = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)  # as if admitted before midnight
    await limiter.settle(hold, Decimal("0.25"), tokens=3)
    usage = await limiter.usage(capped)  # today's counters: nothing of that day's cost
    assert usage.total == to_pico(Decimal("0.25")) and usage.daily == usage.monthly == 0
    day = await resp.execute("GET", f"{redis_prefix}key:{{key-midnight}}:spend:d:2026-11-30")
    month = await resp.execute("GET", f"{redis_prefix}key:{{key-midnight}}:spend:m:2026-11")
    assert int(day) == int(month) == to_pico(Decimal("0.25"))
    assert usage.held == 0


async def test_the_settled_ids_of_a_key_that_goes_quiet_expire(resp: RespClient, redis_prefix: str):
    # Settle ids dedupe a re-sent settle for a minute; a key that stops sending must not keep
    # them for ever (every ~16th settle, the one whose id ends in 0, trims and sets the expiry).
    limiter = RedisLimiter(resp, redis_prefix)
    quiet = key(key_id="key-quiet", limit="1")
    await limiter.settle(Hold(quiet, "feedface00000000", 0), Decimal("0.01"), tokens=1)
    ttl_ms = await resp.execute("PTTL", f"{redis_prefix}key:{{key-quiet}}:settled")
    assert 0 < int(ttl_ms) <= 60_000
