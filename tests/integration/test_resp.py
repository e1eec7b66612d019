"""The lean RESP client on a real Redis: pipelined replies in order, error replies, a cancelled
caller that doesn't shift later replies, a killed connection, NOSCRIPT, AUTH and SELECT."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.resp import (
    Batch,
    ConnectionFailed,
    FailingFast,
    ReplyError,
    ReplyTimeout,
    RespClient,
)
from tests.support.polling import eventually


@pytest.fixture
async def one(redis_url: str, redis: Redis) -> AsyncIterator[RespClient]:
    """A client with a single connection, so every command shares its order."""
    client = RespClient.from_url(redis_url, connections=1)
    yield client
    await client.aclose()


async def test_concurrent_commands_and_a_pipeline_get_their_own_replies(
    redis_url: str, redis: Redis, redis_prefix: str
) -> None:
    client = RespClient.from_url(redis_url, connections=2)
    try:
        keys = [f"{redis_prefix}n{n}" for n in range(200)]
        await client.pipeline([("SET", key, n) for n, key in enumerate(keys)])
        replies = await asyncio.gather(*(client.execute("GET", key) for key in keys))
        assert replies == [str(n).encode() for n in range(200)]
        piped = await client.pipeline([("INCR", keys[0]), ("GET", keys[0]), ("PING",)])
        assert piped == [1, b"1", b"PONG"]
        assert await client.pipeline([]) == []
    finally:
        await client.aclose()


class _CountingTransport:
    """Counts the writes to a connection's socket; everything else goes to the real one."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner, self.writes = inner, 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.inner.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_commands_sent_in_one_loop_iteration_share_a_write_and_keep_their_order(
    redis_url: str, redis: Redis, redis_prefix: str
) -> None:
    client = RespClient.from_url(redis_url, connections=2)
    try:
        await asyncio.gather(client.execute("PING"), client.execute("PING"))  # both open
        counters = []
        for connection in client._slots:
            assert connection is not None
            counting = _CountingTransport(connection._transport)  # type: ignore[arg-type]
            connection._transport = counting  # type: ignore[assignment]
            counters.append(counting)
        key = f"{redis_prefix}counter"
        replies = await asyncio.gather(*(client.execute("INCR", key) for _ in range(50)))
        assert replies == list(range(1, 51))  # one connection, in the order they were sent
        # the first goes out at once (nothing to wait behind), the other 49 in one write
        assert sum(counting.writes for counting in counters) == 2
        piped = await asyncio.gather(
            *(client.pipeline([("INCR", key), ("GET", key)]) for _ in range(3))
        )
        assert piped == [[51, b"51"], [52, b"52"], [53, b"53"]]
    finally:
        await client.aclose()


async def test_an_error_reply_is_raised_alone_and_kept_in_place_in_a_pipeline(
    one: RespClient, redis_prefix: str
) -> None:
    key = f"{redis_prefix}list"
    await one.execute("RPUSH", key, "x")
    with pytest.raises(ReplyError, match="WRONGTYPE"):
        await one.execute("INCR", key)
    replies = await one.pipeline([("INCR", key), ("LLEN", key)])
    assert isinstance(replies[0], ReplyError) and replies[1] == 1
    assert await one.execute("PING") == b"PONG"


async def test_a_cancelled_caller_does_not_shift_later_replies(
    one: RespClient, redis_prefix: str
) -> None:
    key = f"{redis_prefix}k"
    await one.execute("SET", key, "mine")
    blocked = asyncio.create_task(one.execute("BLPOP", f"{redis_prefix}empty", "0.3"))
    behind = asyncio.create_task(one.execute("GET", key))
    await asyncio.sleep(0.05)
    blocked.cancel()
    assert await behind == b"mine"  # not BLPOP's nil
    assert blocked.cancelled()
    assert await one.pipeline([("GET", key), ("PING",)]) == [b"mine", b"PONG"]


async def test_a_killed_connection_fails_what_waits_and_the_next_command_reconnects(
    one: RespClient, redis: Redis, redis_prefix: str
) -> None:
    connection_id = await one.execute("CLIENT", "ID")
    waiting = asyncio.create_task(one.execute("BLPOP", f"{redis_prefix}empty", "5"))
    await asyncio.sleep(0.05)
    assert await redis.client_kill_filter(_id=connection_id) == 1
    with pytest.raises(ConnectionFailed, match="lost"):
        await waiting
    assert await one.execute("PING") == b"PONG"
    assert await one.execute("CLIENT", "ID") != connection_id


async def test_a_reply_past_the_timeout_fails_the_connection(
    redis_url: str, redis: Redis, redis_prefix: str
) -> None:
    client = RespClient.from_url(redis_url, connections=1, timeout_s=0.2, fail_fast_s=0.2)
    try:
        with pytest.raises(ReplyTimeout):
            await client.execute("BLPOP", f"{redis_prefix}empty", "1")
        with pytest.raises(FailingFast):  # not tried: it just timed out
            await client.execute("PING")

        async def answers() -> bool:
            try:
                return bool(await client.execute("PING") == b"PONG")
            except FailingFast:
                return False

        await eventually(answers, 5, what="the fail-fast window to end")
    finally:
        await client.aclose()


async def test_unreachable_redis_fails_with_a_clear_error() -> None:
    client = RespClient.from_url("redis://127.0.0.1:1/0", timeout_s=1)
    with pytest.raises(ConnectionFailed, match=r"cannot connect to Redis at 127\.0\.0\.1:1\b"):
        await client.execute("PING")
    await client.aclose()


async def test_a_script_redis_does_not_know_is_sent_by_eval_then_loaded(
    one: RespClient, redis: Redis, redis_prefix: str
) -> None:
    # A source no one has loaded: the first EVALSHA answers NOSCRIPT, as after SCRIPT FLUSH.
    script = one.script(f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}")
    assert (await redis.script_exists(script.sha)) == [False]
    assert await script([f"{redis_prefix}a"], [1]) == [f"{redis_prefix}a".encode(), b"1"]
    assert (await redis.script_exists(script.sha)) == [True]
    fresh = one.script(f"-- {uuid.uuid4().hex}\nreturn ARGV[1]")
    replies = await one.pipeline([fresh.command([], ["x"]), ("PING",), fresh.command([], ["y"])])
    assert replies == [b"x", b"PONG", b"y"]


async def test_auth_and_select_come_from_the_url(redis: Redis, redis_prefix: str) -> None:
    user, password = f"gwtest-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{redis_prefix}*"],
        commands=["+@all"],
    )
    db9 = Redis(host="127.0.0.1", port=6379, db=9)
    key = f"{redis_prefix}in-db-9"
    try:
        client = RespClient.from_url(f"redis://{user}:{password}@127.0.0.1:6379/9")
        await client.execute("SET", key, "here")
        assert await db9.get(key) == b"here" and await redis.get(key) is None
        await client.aclose()
        wrong = RespClient.from_url(f"redis://{user}:nope@127.0.0.1:6379/9")
        with pytest.raises(ConnectionFailed, match="refused the login"):
            await wrong.execute("PING")
        await wrong.aclose()
    finally:
        await db9.delete(key)
        await db9.aclose()
        await redis.acl_deluser(user)


async def test_a_batch_sends_once_and_raises_only_after_every_owner_saw_its_reply(
    one: RespClient, redis: Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}list"
    await one.execute("RPUSH", key, "x")
    seen: list[object] = []

    def fail(reply: object) -> None:
        seen.append(reply)
        raise RuntimeError("owner refused")

    batch = Batch()
    batch.add(one, ("INCR", key), fail)
    batch.add(one, ("LLEN", key), seen.append)
    with pytest.raises(RuntimeError, match="owner refused"):
        await batch.send()
    assert isinstance(seen[0], ReplyError) and seen[1] == 1
    await one.aclose()  # closed: a batch hands every owner the connection error
    dead = RespClient.from_url("redis://127.0.0.1:1/0", timeout_s=1)
    seen.clear()
    batch = Batch()
    batch.add(dead, ("PING",), seen.append)
    batch.add(dead, ("PING",), seen.append)
    await batch.send()
    assert all(isinstance(reply, ConnectionFailed) for reply in seen) and len(seen) == 2
