"""The httpx transport keeps the seam's contract on loopback: the same error classes, with
`received` telling a request the upstream never answered from an answer cut short."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest

from providers.http1 import ConnectionClosed, HttpTimeouts, Timeout
from providers.http1.errors import ConnectFailed, TooLarge
from providers.http1.limits import Limits
from providers.httpx_transport import HttpxTransport
from tests.integration.test_http1_client import HELLO, unused_port
from tests.support.scripted_http import Request, ScriptedServer, chunk, scripted_server

Writer = asyncio.StreamWriter


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as script:

        @script.route("/hello")
        async def hello(request: Request, writer: Writer) -> bool:
            writer.write(HELLO)
            return True

        @script.route("/drop")
        async def drop(request: Request, writer: Writer) -> bool:
            return False

        @script.route("/cut")
        async def cut(request: Request, writer: Writer) -> bool:
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id":')
            await writer.drain()
            return False

        @script.route("/silent")
        async def silent(request: Request, writer: Writer) -> bool:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(chunk(b"data: 1\n\n"))
            await script.until_client_leaves(request)
            return False

        yield script


@pytest.fixture
async def transport() -> AsyncIterator[HttpxTransport]:
    transport = HttpxTransport()
    yield transport
    await transport.aclose()


async def test_an_answer_and_the_user_agent(server: ScriptedServer, transport: HttpxTransport):
    resp = await transport.request("POST", server.url("/hello"), {"X-A": "1"}, b"{}")
    assert (resp.status, await resp.read(), resp.complete) == (200, b"hello", True)
    assert server.requests[0].headers["user-agent"].startswith("llm-routing-gateway/")


async def test_a_drop_before_the_answer_is_not_received(
    server: ScriptedServer, transport: HttpxTransport
) -> None:
    with pytest.raises(ConnectionClosed) as info:
        await transport.request("POST", server.url("/drop"), body=b"{}")
    assert not info.value.received


async def test_a_body_cut_short_is_received(server: ScriptedServer, transport: HttpxTransport):
    resp = await transport.request("POST", server.url("/cut"), body=b"{}")
    with pytest.raises(ConnectionClosed) as info:
        await resp.read()
    assert info.value.received


async def test_a_silent_stream_ends_at_the_idle_timeout(
    server: ScriptedServer, transport: HttpxTransport
) -> None:
    timeouts = HttpTimeouts(connect=1, headers=5, total=30, idle=0.3)
    resp = await transport.request("POST", server.url("/silent"), body=b"{}", timeouts=timeouts)
    pieces = resp.aiter_bytes()
    assert await anext(pieces) == b"data: 1\n\n"
    with pytest.raises(Timeout) as info:
        await anext(pieces)
    assert info.value.phase == "idle" and info.value.received


async def test_a_gzip_bomb_stops_at_the_cap(server: ScriptedServer) -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))

    @server.route("/bomb")
    async def gz(request: Request, writer: Writer) -> bool:
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % len(bomb) + bomb)
        return True

    transport = HttpxTransport(limits=Limits(max_decoded_bytes=1024 * 1024))
    try:
        resp = await transport.request("GET", server.url("/bomb"))
        with pytest.raises(TooLarge):
            await resp.read()
    finally:
        await transport.aclose()


async def test_refused_is_a_connect_failure(transport: HttpxTransport) -> None:
    with pytest.raises(ConnectFailed):
        await transport.request("GET", f"http://127.0.0.1:{unused_port()}/")
