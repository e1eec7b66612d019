"""The RESP client when Redis misbehaves, on loopback: a Redis that stops answering, a demoted
primary answering -READONLY, a connection dropped after Redis ran a settle, URL options."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from gateway.keys.limiter import LimiterUnavailable
from gateway.keys.redis_limiter import RedisLimiter
from gateway.resp import Address, Batch, FailingFast, RespClient
from tests.integration.keys_fixtures import redis_client
from tests.integration.test_keys_limiter import key

READONLY = b"-READONLY You can't write against a read only replica.\r\n"


@contextlib.asynccontextmanager
async def silent_redis() -> AsyncIterator[int]:
    """A server that accepts connections and reads commands but never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()


async def test_a_redis_that_stops_answering_fails_limited_requests_within_a_second() -> None:
    async with silent_redis() as port:
        client = RespClient.from_url(f"redis://127.0.0.1:{port}/0")
        limiter = RedisLimiter(client, "gw:")
        try:
            started = time.monotonic()
            with pytest.raises(LimiterUnavailable):
                await limiter.admit(key(limit="5"), Decimal("0.01"))
            first = time.monotonic() - started
            started = time.monotonic()
            for _ in range(20):  # while it fails fast, nobody waits on it again
                with pytest.raises(LimiterUnavailable):
                    await limiter.admit(key(limit="5"), Decimal("0.01"))
            rest = time.monotonic() - started
        finally:
            await client.aclose()
    assert 0.5 < first < 1.8
    assert rest < 0.5


async def test_a_connect_that_fails_fails_the_next_commands_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens: refused
    client = RespClient.from_url(f"redis://127.0.0.1:{port}/0", fail_fast_s=5)
    try:
        with pytest.raises(Exception, match="cannot connect"):
            await client.execute("PING")
        with pytest.raises(FailingFast, match="cannot connect"):
            await client.execute("PING")
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def demoted_then_primary(redis_port: int) -> AsyncIterator[list[int]]:
    """The first connection answers every command -READONLY (an old primary after a failover);
    later ones are relayed to the real Redis. Yields the list of connection numbers seen."""
    seen: list[int] = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(len(seen) + 1)
        if len(seen) == 1:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    count = data.count(b"*")  # one array header per command here
                    writer.write(READONLY * count)
                    await writer.drain()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", redis_port)
        await asyncio.gather(relay(reader, up_writer), relay(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield [server.sockets[0].getsockname()[1], seen]  # type: ignore[list-item]
    finally:
        server.close()


async def test_a_readonly_reply_makes_the_client_reconnect(
    redis_url: str, redis_prefix: str
) -> None:
    port = Address.from_url(redis_url).port
    async with (
        redis_client(redis_url, redis_prefix) as redis,
        demoted_then_primary(port) as (proxy_port, seen),
    ):
        client = RespClient.from_url(f"redis://127.0.0.1:{proxy_port}/0", connections=1)
        try:
            assert await client.execute("SET", f"{redis_prefix}failover", "1") == b"OK"
            assert await redis.get(f"{redis_prefix}failover") == b"1"
            assert seen == [1, 2]
            batch = Batch()
            got: list[object] = []
            batch.add(client, ("INCR", f"{redis_prefix}failover"), got.append)
            await batch.send()
            assert got == [2]
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def dropping_after_settle(redis_port: int) -> AsyncIterator[list[int]]:
    """Relays to Redis, but the first time a settle (EVALSHA) goes through, it waits for Redis's
    reply and then drops the client's connection instead of relaying it."""
    dropped: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", redis_port)

        async def down() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(65536):
                    if dropping.is_set() and not dropped:
                        dropped.append(1)
                        writer.transport.abort()  # Redis ran it; the client never hears
                        return
                    writer.write(data)
                    await writer.drain()

        dropping = asyncio.Event()
        task = asyncio.create_task(down())
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if b"EVALSHA" in data and not dropped:
                    dropping.set()
                up_writer.write(data)
                await up_writer.drain()
        task.cancel()
        up_writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield [server.sockets[0].getsockname()[1], dropped]  # type: ignore[list-item]
    finally:
        server.close()


async def test_a_settle_dropped_after_redis_ran_it_is_not_charged_twice(
    redis_url: str, redis_prefix: str
) -> None:
    port = Address.from_url(redis_url).port
    async with (
        redis_client(redis_url, redis_prefix),
        dropping_after_settle(port) as (proxy_port, dropped),
    ):
        direct = RespClient.from_url(redis_url)
        flaky = RespClient.from_url(f"redis://127.0.0.1:{proxy_port}/0", connections=1)
        try:
            capped = key(key_id="key-dedupe", limit="10")
            hold = await RedisLimiter(direct, redis_prefix).admit(capped, Decimal("0.5"))
            await RedisLimiter(flaky, redis_prefix).settle(hold, Decimal("0.25"), 10)
            assert dropped == [1]  # the reply was lost: the batch was sent again
            usage = await RedisLimiter(direct, redis_prefix).usage(capped)
            assert usage.total == 250_000_000_000  # 0.25 USD in pico-USD, once
            assert usage.held == 0
        finally:
            await direct.aclose()
            await flaky.aclose()


def test_redis_py_url_options_are_taken_or_refused_by_name() -> None:
    url = (
        "redis://h:6379/2?socket_timeout=0.5&socket_connect_timeout=0.25&socket_keepalive=false"
        "&health_check_interval=30&max_connections=50&client_name=gw&retry_on_timeout=true"
    )
    address = Address.from_url(url)
    assert (address.reply_timeout_s, address.connect_timeout_s) == (0.5, 0.25)
    assert not address.keepalive and address.db == 2
    assert address.greeting() == [("SELECT", 2), ("CLIENT", "SETNAME", "gw")]
    tls = Address.from_url("rediss://h/0?ssl_cert_reqs=optional&ssl_check_hostname=false").tls
    assert tls is not None and not tls.check_hostname
    with pytest.raises(ValueError, match="'sentinel_master'"):
        Address.from_url("redis://h/0?sentinel_master=x")
    with pytest.raises(ValueError, match="socket_timeout"):
        Address.from_url("redis://h/0?socket_timeout=soon")
    assert Address.from_url("redis://h/0").reply_timeout_s == 1.0
