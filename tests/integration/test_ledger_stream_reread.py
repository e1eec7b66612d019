"""A stream read whose reply was lost (Redis restarted, a Sentinel failover) may have delivered
entries to this writer: its next read takes them again at once, not after `claim_idle_s`."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.ledger.stream import GROUP, RedisStreamLedger
from gateway.resp import RespClient
from tests.integration.test_ledger_spool import _answers, own_redis
from tests.integration.test_ledger_stream import _event


async def test_entries_delivered_by_a_lost_read_are_read_again_after_the_failure(
    tmp_path: Path,
) -> None:
    with own_redis(tmp_path) as (url, kill, start):
        await _answers(url)
        redis, resp = Redis.from_url(url), RespClient.from_url(url)
        stream = RedisStreamLedger(redis, "gw:", claim_idle_s=300, resp=resp)
        try:
            assert await stream.read(10, 0) == []  # the group exists
            await stream.emit(_event(1))
            # Delivered to this writer, but the reply never reached it:
            other = Redis.from_url(url)
            await other.xreadgroup(GROUP, stream.consumer, {stream.key: ">"}, count=10)
            await other.aclose()
            kill()
            with pytest.raises((RedisError, OSError)):
                await stream.read(10, 0)
            start()
            await _answers(url)
            entries = await stream.read(10, 0)
            assert [e.event.id for e in entries] == [_event(1).id]  # not 300 s later
            await stream.ack(entries)
            assert await stream.read(10, 0) == []
        finally:
            await redis.aclose()
            await resp.aclose()
