"""The in-process limiter keeps the Redis limiter's rules (embedded default), on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.errors import PaymentRequired, RateLimited
from gateway.keys.limiter import Hold
from gateway.keys.memory_limiter import InProcessLimiter
from gateway.keys.pico import to_pico
from gateway.keys.record import ApiKey, RateLimit

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def key(limit: str | None = None, reset: str = "monthly", rpm=None, tpm=None) -> ApiKey:
    at = datetime.fromtimestamp(T0, UTC)
    return ApiKey(
        id="key-1",
        name="k",
        key_hash="h",
        prefix="sk-gw-x",
        created_at=at,
        updated_at=at,
        limit=None if limit is None else Decimal(limit),
        limit_reset=reset,  # type: ignore[arg-type]
        rate_limit=RateLimit(rpm, tpm),
    )


async def test_holds_never_exceed_the_limit():
    limiter = InProcessLimiter(clock=Clock())
    capped = key(limit="1")
    results = await asyncio.gather(
        *(limiter.admit(capped, Decimal("0.03")) for _ in range(100)), return_exceptions=True
    )
    assert sum(isinstance(r, Hold) for r in results) == 33
    assert sum(isinstance(r, PaymentRequired) for r in results) == 67


async def test_settle_counts_cost_in_every_period_once():
    clock = Clock()
    limiter = InProcessLimiter(clock=clock)
    capped = key(limit="1", reset="daily")
    hold = await limiter.admit(capped, Decimal("0.5"))
    await limiter.settle(hold, Decimal("0.25"), tokens=3)
    await limiter.settle(hold, Decimal("0.25"), tokens=3)
    usage = await limiter.usage(capped)
    quarter = to_pico(Decimal("0.25"))
    assert (usage.total, usage.daily, usage.weekly, usage.monthly, usage.held) == (
        quarter,
        quarter,
        quarter,
        quarter,
        0,
    )
    clock.now += 86_400  # the next day: the daily limit starts afresh, the total does not
    usage = await limiter.usage(capped)
    assert usage.daily == 0 and usage.total == quarter
    await limiter.admit(capped, Decimal("1"))


async def test_a_dead_requests_hold_expires():
    clock = Clock()
    limiter = InProcessLimiter(hold_ttl_s=10, clock=clock)
    capped = key(limit="1")
    await limiter.admit(capped, Decimal("1"))
    with pytest.raises(PaymentRequired):
        await limiter.admit(capped, Decimal("1"))
    clock.now += 10
    await limiter.admit(capped, Decimal("1"))


async def test_rate_limits_match_the_redis_limiter():
    clock = Clock()
    limiter = InProcessLimiter(clock=clock)
    limited = key(rpm=3)
    holds = [await limiter.admit(limited, Decimal(0)) for _ in range(3)]
    assert [h.headers["X-RateLimit-Remaining"] for h in holds] == ["2", "1", "0"]
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(limited, Decimal(0))
    assert refused.value.headers["Retry-After"] == "20"
    assert int(refused.value.headers["X-RateLimit-Reset"]) == int((T0 + 20) * 1000)
    clock.now += 20
    await limiter.admit(limited, Decimal(0))

    tokens = key(tpm=100)
    hold = await limiter.admit(tokens, Decimal(0))
    await limiter.settle(hold, Decimal(0), tokens=150)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(tokens, Decimal(0))
    assert refused.value.headers["Retry-After"] == "30"


async def test_a_request_across_midnight_counts_in_the_day_it_was_admitted():
    # The billing reports put a generation in the period of its creation (= admit) time; the
    # key's counters must agree, or a request running across midnight counts twice per period.
    clock = Clock()
    clock.now = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp()  # end of a month
    limiter = InProcessLimiter(clock=clock)
    capped = key(limit="1", reset="daily")
    hold = await limiter.admit(capped, Decimal("0.5"))
    assert hold.at == datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    clock.now += 2  # settled on the first of the next month
    await limiter.settle(hold, Decimal("0.25"), tokens=3)
    today = await limiter.usage(capped)
    assert (today.daily, today.monthly, today.total) == (0, 0, to_pico(Decimal("0.25")))
    clock.now -= 2  # as read on the day it was admitted
    yesterday = await limiter.usage(capped)
    assert yesterday.daily == yesterday.monthly == to_pico(Decimal("0.25"))
