"""The end of a request on a real Redis: ledger XADD and key settlement in one batch; a failed
XADD is a 503 (the answer is withheld), a failed settlement only a log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from gateway.chat.recorder import Recorder
from gateway.keys.limiter import Hold
from gateway.keys.pico import to_pico
from gateway.keys.record import ApiKey, RateLimit
from gateway.keys.redis_limiter import RedisLimiter
from gateway.ledger.events import GenerationEvent
from gateway.ledger.stream import LedgerUnavailable, RedisStreamLedger
from gateway.resp import RespClient
from providers.pricing import Cost
from providers.usage import Usage

NOW = datetime.now(UTC)
KEY = ApiKey("key-end", "end", "0" * 64, "sk-gw-end", NOW, NOW, Decimal(1), "none", RateLimit())


@pytest.fixture
async def resp(redis_url: str, redis: Redis) -> AsyncIterator[RespClient]:
    client = RespClient.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def stream(redis: Redis, resp: RespClient, redis_prefix: str) -> RedisStreamLedger:
    return RedisStreamLedger(redis, redis_prefix, claim_idle_s=30, resp=resp)


@pytest.fixture
def limiter(resp: RespClient, redis_prefix: str) -> RedisLimiter:
    return RedisLimiter(resp, redis_prefix)


def event() -> GenerationEvent:
    return GenerationEvent("gen-end-1", NOW, "m", "m", "balanced", streamed=False)


async def end(stream: RedisStreamLedger, limiter: RedisLimiter, hold: Hold) -> None:
    """The chat service's own end of a generation, its recorder's (planning and execution play
    no part)."""
    finished = event()
    finished.cost = Cost(Decimal("0.25"), Decimal(0), Decimal(0), Decimal(0))
    finished.usage = Usage(prompt_tokens=4, completion_tokens=6)
    await Recorder(stream, limiter, None).end(finished, hold)


async def test_event_and_settlement_land_together(
    redis: Redis,
    stream: RedisStreamLedger,
    limiter: RedisLimiter,
    redis_prefix: str,
) -> None:
    hold = await limiter.admit(KEY, Decimal("0.5"))
    await end(stream, limiter, hold)
    assert await redis.xlen(stream.key) == 1
    usage = await limiter.usage(KEY)
    assert (usage.total, usage.held) == (to_pico(Decimal("0.25")), 0)


async def test_a_failed_xadd_is_ledger_unavailable_and_the_settlement_still_lands(
    redis: Redis,
    stream: RedisStreamLedger,
    limiter: RedisLimiter,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hold = await limiter.admit(KEY, Decimal("0.5"))
    await redis.set(stream.key, "not a stream")  # XADD answers WRONGTYPE
    with caplog.at_level(logging.ERROR), pytest.raises(LedgerUnavailable) as refused:
        await end(stream, limiter, hold)
    assert refused.value.client_status == 503
    assert "ledger event not queued" in caplog.text
    assert (await limiter.usage(KEY)).total == to_pico(Decimal("0.25"))


async def test_a_failed_settlement_is_only_logged(
    redis: Redis,
    stream: RedisStreamLedger,
    limiter: RedisLimiter,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hold = await limiter.admit(KEY, Decimal("0.5"))
    await redis.rpush(f"{redis_prefix}key:{{{KEY.id}}}:spend:total", "x")  # INCRBY fails
    with caplog.at_level(logging.WARNING):
        await end(stream, limiter, hold)
    assert "settling a key's spend failed" in caplog.text
    assert await redis.xlen(stream.key) == 1
