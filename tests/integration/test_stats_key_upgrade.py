"""Upgrading to the `{stats}` hash-tagged names: stats buckets and breaker states written under
the old names are merged into the new ones once, so uptime windows carry over."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from routing.breaker import BreakerState
from routing.buckets import Layout, needed
from routing.redis_stats_store import RedisStatsStore


async def test_old_stats_and_breakers_are_merged_once(redis: Redis, redis_prefix: str) -> None:
    layout = Layout.build((30, 300), 30, 300, 5, 1.0)
    now = time.time()
    width, index = sorted(needed(layout, int(now * 1000)))[-1]
    old_bucket = f"{redis_prefix}stats:{width}:{index}"
    await redis.hset(old_bucket, mapping={"p/m|ok": 7, "p/m|err": 2})
    await redis.pexpire(old_bucket, 60_000)
    old_state = BreakerState("p/m", open=True, until=now + 30, changed_at=now)
    kept_state = BreakerState("q/m", open=False, changed_at=now)
    await redis.hset(
        f"{redis_prefix}breakers",
        mapping={"p/m": old_state.to_json(), "q/m": BreakerState("q/m", open=True).to_json()},
    )
    store = RedisStatsStore(redis, redis_prefix, layout)
    store.share_breaker(kept_state)  # a state the new version already wrote wins
    await store.flush()
    await redis.hincrby(f"{redis_prefix}{{stats}}:{width}:{index}", "p/m|ok", 1)

    assert await store.adopt_legacy(now) == 2
    assert await store.adopt_legacy(now) == 0  # once: a second replica adds nothing
    new_bucket = await redis.hgetall(f"{redis_prefix}{{stats}}:{width}:{index}")
    assert new_bucket == {b"p/m|ok": b"8", b"p/m|err": b"2"}
    assert 0 < await redis.pttl(f"{redis_prefix}{{stats}}:{width}:{index}") <= 60_000
    assert not await redis.exists(old_bucket, f"{redis_prefix}breakers")
    view = await store.read(now)
    assert view.breakers["p/m"].open  # carried over
    assert not view.breakers["q/m"].open  # the new one kept
