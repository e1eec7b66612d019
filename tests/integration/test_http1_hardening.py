"""The HTTP/1.1 client against hostile or unlucky upstreams on loopback: stale keep-alive
sockets, answers cut short, header floods, gzip bombs, silent streams, proxies, black holes."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.http1 import ConnectionClosed, HttpClient, HttpTimeouts, Timeout
from providers.http1 import client as client_module
from providers.http1.errors import TooLarge
from providers.http1.limits import Limits
from providers.http1.pool import AddrInfo
from providers.http1.proxy import Proxy, ProxyRules
from tests.integration.test_http1_client import HELLO, tls_files  # noqa: F401 (a fixture)
from tests.support.polling import eventually
from tests.support.scripted_http import Request, ScriptedServer, chunk, scripted_server

Writer = asyncio.StreamWriter
NO_PROXIES = ProxyRules({})


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as script:

        @script.route("/hello")
        async def hello(request: Request, writer: Writer) -> bool:
            writer.write(HELLO)
            return True

        yield script


def client_for(**kwargs: object) -> HttpClient:
    return HttpClient(proxies=NO_PROXIES, **kwargs)  # type: ignore[arg-type]


async def test_a_stale_reused_connection_is_retried_once_on_a_new_one(
    server: ScriptedServer,
) -> None:
    served: dict[int, int] = {}

    @server.route("/stale")
    async def stale(request: Request, writer: Writer) -> bool:
        served[request.connection] = served.get(request.connection, 0) + 1
        if served[request.connection] == 2:
            return False  # the keep-alive race: closed without a byte of answer
        writer.write(HELLO)
        return True

    async with client_for() as client:
        for _ in range(2):
            async with await client.request("POST", server.url("/stale"), body=b"{}") as resp:
                assert (resp.status, await resp.read()) == (200, b"hello")
    assert [r.connection for r in server.requests] == [1, 1, 2]
    assert server.accepted == 2


async def test_a_reused_connection_that_dies_later_is_not_taken_for_stale(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "STALE_WINDOW_S", 0.1)

    @server.route("/crash")
    async def crash(request: Request, writer: Writer) -> bool:
        await asyncio.sleep(0.3)  # the upstream working on it, then dying
        return False

    async with client_for() as client:
        async with await client.request("GET", server.url("/hello")) as resp:
            await resp.read()
        with pytest.raises(ConnectionClosed) as info:
            await client.request("POST", server.url("/crash"), body=b"{}")
    assert not info.value.received  # retryable by policy, and counted: not a keep-alive race
    assert [r.path for r in server.requests].count("/crash") == 1


async def test_a_fresh_connection_closed_before_the_answer_is_not_retried(
    server: ScriptedServer,
) -> None:
    @server.route("/drop")
    async def drop(request: Request, writer: Writer) -> bool:
        return False

    async with client_for() as client:
        with pytest.raises(ConnectionClosed) as info:
            await client.request("POST", server.url("/drop"), body=b"{}")
    assert not info.value.received
    assert len(server.requests) == 1


async def test_a_body_cut_after_the_status_line_is_reported_as_received(
    server: ScriptedServer,
) -> None:
    @server.route("/cut")
    async def cut(request: Request, writer: Writer) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id":')
        await writer.drain()
        return False

    async with client_for() as client:
        assert await client.request("GET", server.url("/hello"))  # a reused connection next
        resp = await client.request("POST", server.url("/cut"), body=b"{}")
        with pytest.raises(ConnectionClosed) as info:
            await resp.read()
    assert info.value.received
    assert [r.path for r in server.requests].count("/cut") == 1


async def test_a_status_line_then_a_hang_up_is_received_and_not_retried(
    server: ScriptedServer,
) -> None:
    @server.route("/half")
    async def half(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        await writer.drain()
        return False

    async with client_for() as client:
        async with await client.request("GET", server.url("/hello")) as resp:
            await resp.read()
        with pytest.raises(ConnectionClosed) as info:
            await client.request("POST", server.url("/half"), body=b"{}")  # on a reused one
    assert info.value.received
    assert [r.path for r in server.requests].count("/half") == 1


async def test_a_header_flood_fails_the_request(server: ScriptedServer) -> None:
    @server.route("/flood")
    async def flood(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        with contextlib.suppress(ConnectionError):
            for n in range(20_000):  # 20 MB of headers unless the client stops reading
                writer.write(b"X-Flood-%d: %s\r\n" % (n, b"a" * 1000))
                await writer.drain()
        return False

    async with client_for(limits=Limits(max_header_bytes=32 * 1024)) as client:
        with pytest.raises(TooLarge):
            await client.request("GET", server.url("/flood"))
    await eventually(lambda: server.open_now == 0, 5, what="the flood's connection dropped")


async def test_a_long_header_line_fails_the_request(server: ScriptedServer) -> None:
    @server.route("/long")
    async def long(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\n")
        return True

    async with client_for() as client:
        with pytest.raises(TooLarge):
            await client.request("GET", server.url("/long"))


async def test_a_gzip_bomb_fails_the_read_at_the_cap(server: ScriptedServer) -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # ~50 KB inflating to 50 MB

    @server.route("/bomb")
    async def gz(request: Request, writer: Writer) -> bool:
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % len(bomb) + bomb)
        return True

    async with client_for(limits=Limits(max_decoded_bytes=1024 * 1024)) as client:
        resp = await client.request("GET", server.url("/bomb"), {"Accept-Encoding": "gzip"})
        with pytest.raises(TooLarge) as info:
            await resp.read()
        assert info.value.received
        resp = await client.request("GET", server.url("/bomb"), {"Accept-Encoding": "gzip"})
        with pytest.raises(TooLarge):
            async for _ in resp:
                pass


async def test_a_silent_stream_ends_at_the_idle_timeout(server: ScriptedServer) -> None:
    @server.route("/silent")
    async def silent(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(chunk(b"data: 1\n\n"))
        await server.until_client_leaves(request)
        return False

    timeouts = HttpTimeouts(connect=1, headers=5, total=30, idle=0.3)
    async with client_for() as client:
        started = time.monotonic()
        resp = await client.request("POST", server.url("/silent"), body=b"{}", timeouts=timeouts)
        assert await anext(aiter(resp)) == b"data: 1\n\n"
        with pytest.raises(Timeout) as info:
            await anext(aiter(resp))
        elapsed = time.monotonic() - started
    assert info.value.phase == "idle" and info.value.received
    assert 0.25 < elapsed < 3
    await eventually(lambda: server.closed_by_peer == 1, 5)


async def test_steady_chunks_slower_than_nothing_are_not_idle(server: ScriptedServer) -> None:
    @server.route("/steady")
    async def steady(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for n in range(6):
            writer.write(chunk(b"%d" % n))
            await writer.drain()
            await asyncio.sleep(0.1)  # the upstream's pace, not synchronization
        writer.write(b"0\r\n\r\n")
        return True

    timeouts = HttpTimeouts(connect=1, headers=5, total=30, idle=0.35)
    async with client_for() as client:
        resp = await client.request("GET", server.url("/steady"), timeouts=timeouts)
        assert [piece async for piece in resp] == [b"%d" % n for n in range(6)]


async def test_connections_per_origin_are_capped(server: ScriptedServer) -> None:
    release = asyncio.Event()

    @server.route("/slow")
    async def slow(request: Request, writer: Writer) -> bool:
        await release.wait()
        writer.write(HELLO)
        return True

    async with client_for(limits=Limits(max_per_origin=2)) as client:

        async def one() -> bytes:
            async with await client.request("GET", server.url("/slow")) as resp:
                return await resp.read()

        calls = [asyncio.create_task(one()) for _ in range(5)]
        await eventually(lambda: len(server.requests) == 2, 5)
        assert client.open_connections == 2
        release.set()
        assert await asyncio.gather(*calls) == [b"hello"] * 5
    assert server.most_open == 2


async def test_a_user_agent_is_sent_unless_the_caller_sets_one(server: ScriptedServer) -> None:
    async with client_for() as client:
        async with await client.request("GET", server.url("/hello")) as resp:
            await resp.read()
        async with await client.request("GET", server.url("/hello"), {"User-Agent": "x"}) as r:
            await r.read()
    assert server.requests[0].headers["user-agent"].startswith("llm-routing-gateway/")
    assert server.requests[1].headers["user-agent"] == "x"


async def test_keepalive_expiry_is_set_per_origin(server: ScriptedServer) -> None:
    async with client_for() as client:
        for _ in range(2):
            async with await client.request("GET", server.url("/hello"), keepalive_s=0.0) as resp:
                await resp.read()
    assert server.accepted == 2  # the idle connection was already too old to reuse


# -- proxies


def test_proxy_rules_follow_no_proxy() -> None:
    rules = ProxyRules(
        {"HTTPS_PROXY": "http://u:p%40ss@proxy:3128", "NO_PROXY": "internal.example,.corp:8443"}
    )
    proxy = rules.for_target("https", "api.example.com", 443)
    assert proxy is not None and (proxy.host, proxy.port) == ("proxy", 3128)
    assert proxy.authorization == "Basic dTpwQHNz"  # u:p@ss
    assert rules.for_target("https", "internal.example", 443) is None
    assert rules.for_target("https", "a.internal.example", 443) is None
    assert rules.for_target("https", "x.corp", 8443) is None
    assert rules.for_target("https", "x.corp", 443) is not None
    assert rules.for_target("http", "api.example.com", 80) is None  # no HTTP_PROXY
    for local in ("127.0.0.1", "localhost", "::1", "[::1]"):  # loopback never goes through it
        assert rules.for_target("https", local, 443) is None
    with pytest.raises(ValueError, match="httpx"):
        Proxy.from_url("socks5://proxy:1080")


@contextlib.asynccontextmanager
async def tunnelling_proxy() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A CONNECT proxy on loopback that records each request head it gets."""
    heads: list[bytes] = []

    async def pipe(reader: asyncio.StreamReader, writer: Writer) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: Writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        target = head.split(b" ")[1].decode()
        port = target.rpartition(":")[2]
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1], heads
    finally:
        proxy.close()


async def test_https_through_a_proxy_uses_connect(tls_files: tuple[Path, Path]) -> None:  # noqa: F811
    cert, key = tls_files
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    async with (
        scripted_server(server_side, host="localhost") as server,
        tunnelling_proxy() as (
            port,
            heads,
        ),
    ):

        @server.route("/hello")
        async def hello(request: Request, writer: Writer) -> bool:
            writer.write(HELLO)
            return True

        proxy_url = f"http://user:pw@127.0.0.1:{port}"
        rules = ProxyRules({"HTTPS_PROXY": proxy_url}, bypass_loopback=False)
        trusting = ssl.create_default_context(cafile=str(cert))
        async with HttpClient(ssl_context=trusting, proxies=rules) as client:
            for _ in range(2):
                async with await client.request("GET", server.url("/hello")) as resp:
                    assert (resp.status, await resp.read()) == (200, b"hello")
    assert len(heads) == 1  # one tunnel, reused
    assert heads[0].startswith(f"CONNECT localhost:{server.port} HTTP/1.1\r\n".encode())
    assert b"Proxy-Authorization: Basic dXNlcjpwdw==" in heads[0]
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"
    assert "proxy-authorization" not in server.requests[0].headers


async def test_plain_http_through_a_proxy_sends_the_whole_url(server: ScriptedServer) -> None:
    async with scripted_server() as proxy:
        seen: list[Request] = []

        @proxy.route(server.url("/hello"))
        async def forward(request: Request, writer: Writer) -> bool:
            seen.append(request)
            writer.write(HELLO)
            return True

        rules = ProxyRules({"HTTP_PROXY": f"127.0.0.1:{proxy.port}"}, bypass_loopback=False)
        async with HttpClient(proxies=rules) as client:
            async with await client.request("GET", server.url("/hello")) as resp:
                assert await resp.read() == b"hello"
        bypass = ProxyRules(
            {"HTTP_PROXY": f"127.0.0.1:{proxy.port}", "NO_PROXY": "127.0.0.1"},
            bypass_loopback=False,
        )
        async with HttpClient(proxies=bypass) as client:
            async with await client.request("GET", server.url("/hello")) as resp:
                assert await resp.read() == b"hello"
    assert [r.path for r in seen] == [server.url("/hello")]
    assert len(server.requests) == 1  # the second went straight to it


# -- happy eyeballs


@contextlib.contextmanager
def black_hole() -> AsyncIterator[tuple[str, int]]:  # type: ignore[misc]
    """A loopback address whose SYNs go unanswered: a listener with a full accept queue."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    port = listener.getsockname()[1]
    for _ in range(4):  # fill the queue; later connects hang in SYN-SENT
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield "127.0.0.1", port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_black_holed_first_address_falls_over_to_the_next(
    server: ScriptedServer,
) -> None:
    with black_hole() as (hole_host, hole_port):
        probe = socket.socket()
        probe.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            probe.connect((hole_host, hole_port))
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):  # the black hole really swallows connects
            async with asyncio.timeout(0.3):
                await loop.sock_connect(probe, (hole_host, hole_port))
        probe.close()

        async def resolve(host: str, port: int) -> list[AddrInfo]:
            stream = socket.SOCK_STREAM
            return [
                (socket.AF_INET, stream, 6, "", (hole_host, hole_port)),
                (socket.AF_INET, stream, 6, "", ("127.0.0.1", server.port)),
            ]

        async with HttpClient(proxies=NO_PROXIES, resolver=resolve) as client:
            started = time.monotonic()
            async with await client.request(
                "GET", f"http://upstream.test:{server.port}/hello"
            ) as resp:
                assert await resp.read() == b"hello"
            assert time.monotonic() - started < 0.5
