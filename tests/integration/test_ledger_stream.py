"""The Redis stream queue on a real Redis: a dead writer's entries are claimed by another,
acked entries leave the stream, undecodable entries become dead letters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.ledger.events import GenerationEvent
from gateway.ledger.stream import RedisStreamLedger
from gateway.resp import RespClient
from tests.integration.ledger_fixtures import poll


def _event(n: int) -> GenerationEvent:
    return GenerationEvent(
        id=f"gen-1700000000-s{n}",
        created_at=datetime.now(UTC),
        requested_model="openai/gpt-oss-20b",
        model="openai/gpt-oss-20b",
        mode="balanced",
        streamed=False,
    )


async def test_entries_of_a_dead_writer_are_claimed_by_another(
    redis_url: str, redis_prefix: str
) -> None:
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    try:
        dead = RedisStreamLedger(redis, redis_prefix, claim_idle_s=0.2, resp=resp, consumer="dead")
        alive = RedisStreamLedger(
            redis, redis_prefix, claim_idle_s=0.2, resp=resp, consumer="alive"
        )
        for n in range(5):
            await dead.emit(_event(n))
        taken = await dead.read(10, 0)
        assert [e.event.id for e in taken] == [f"gen-1700000000-s{n}" for n in range(5)]
        # `dead` never acks (it crashed): the entries stay in the stream for someone else.
        claimed: list[str] = []

        async def reclaimed() -> bool:
            claimed.extend(e.event.id for e in await alive.read(10, 0.05))
            return len(claimed) >= 5

        await poll(reclaimed, timeout_s=10, what="claimed entries")
        assert sorted(claimed) == sorted(e.event.id for e in taken)
        assert await alive.depth() == 5
        assert (await alive.oldest_age_s() or 0) >= 0
        await alive.ack(taken)
        assert await alive.depth() == 0 and await alive.oldest_age_s() is None
    finally:
        await redis.delete(f"{redis_prefix}ledger:events", f"{redis_prefix}ledger:dead")
        await redis.aclose()
        await resp.aclose()


async def test_an_undecodable_entry_becomes_a_dead_letter(
    redis_url: str, redis_prefix: str
) -> None:
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    try:
        ledger = RedisStreamLedger(redis, redis_prefix, claim_idle_s=30, resp=resp)
        await ledger.emit(_event(1))
        await redis.xadd(ledger.key, {"v": 1, "e": b"{not json"})
        await ledger.emit(_event(2))
        entries = await ledger.read(10, 0)
        assert [e.event.id for e in entries] == ["gen-1700000000-s1", "gen-1700000000-s2"]
        dead = await redis.xrange(ledger.dead_key)
        assert len(dead) == 1 and dead[0][1][b"e"] == b"{not json"
        assert await ledger.depth() == 2  # the bad one left the stream, acked
        assert await ledger.undecodable() == 1  # counted in the status's dead letters
    finally:
        await redis.delete(f"{redis_prefix}ledger:events", f"{redis_prefix}ledger:dead")
        await redis.aclose()
        await resp.aclose()


async def test_a_deleted_stream_is_recreated(redis_url: str, redis_prefix: str) -> None:
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    try:
        ledger = RedisStreamLedger(redis, redis_prefix, claim_idle_s=30, resp=resp)
        assert await ledger.read(10, 0) == []
        await redis.delete(ledger.key)  # e.g. an operator flushed Redis
        with pytest.raises(ResponseError, match="NOGROUP"):
            await ledger.read(10, 0)
        await ledger.emit(_event(3))
        assert [e.event.id for e in await ledger.read(10, 0)] == ["gen-1700000000-s3"]
    finally:
        await redis.delete(f"{redis_prefix}ledger:events", f"{redis_prefix}ledger:dead")
        await redis.aclose()
        await resp.aclose()
