"""The gateway's HTTP/1.1 upstream client against real servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from providers.http1 import (
    ConnectFailed,
    ConnectionClosed,
    HttpClient,
    HttpTimeouts,
    MalformedResponse,
    Timeout,
)
from providers.http1.response import HIGH_WATER
from tests.support.polling import eventually
from tests.support.scripted_http import Request, ScriptedServer, chunk, scripted_server

Writer = asyncio.StreamWriter
HELLO = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as script:

        @script.route("/hello")
        async def hello(request: Request, writer: Writer) -> bool:
            writer.write(HELLO)
            return True

        yield script


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    async with HttpClient() as client:
        yield client


async def get(client: HttpClient, url: str, **kwargs: Any) -> tuple[int, bytes]:
    async with await client.request("GET", url, **kwargs) as response:
        return response.status, await response.read()


async def test_sequential_requests_reuse_one_connection(
    server: ScriptedServer, client: HttpClient
) -> None:
    for _ in range(5):
        assert await get(client, server.url("/hello")) == (200, b"hello")
    assert server.accepted == 1
    assert [r.connection for r in server.requests] == [1] * 5
    assert client.open_connections == 1


async def test_request_line_headers_and_body_reach_the_server(
    server: ScriptedServer, client: HttpClient
) -> None:
    async with await client.request(
        "POST", server.url("/hello?x=1"), {"Authorization": "Bearer k"}, b'{"a":1}'
    ) as response:
        await response.read()
    (request,) = server.requests
    assert (request.method, request.path, request.body) == ("POST", "/hello?x=1", b'{"a":1}')
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["content-length"] == "7"


async def test_a_header_with_a_line_break_is_refused(
    server: ScriptedServer, client: HttpClient
) -> None:
    with pytest.raises(ValueError):
        await client.request("GET", server.url("/hello"), {"X-Bad": "a\r\nX-Injected: 1"})
    assert server.requests == []


async def test_chunked_and_until_close_bodies_are_read_whole(
    server: ScriptedServer, client: HttpClient
) -> None:
    @server.route("/chunked")
    async def chunked(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"one ", b"two ", b"three"):
            writer.write(chunk(part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    @server.route("/until-close")
    async def until_close(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"it")
        return False

    assert await get(client, server.url("/chunked")) == (200, b"one two three")
    assert await get(client, server.url("/chunked")) == (200, b"one two three")
    assert server.accepted == 1
    assert await get(client, server.url("/until-close")) == (200, b"all of it")
    assert await get(client, server.url("/hello")) == (200, b"hello")
    assert server.accepted == 2  # the connection an until-close body ended with is gone


async def test_a_stream_is_delivered_chunk_by_chunk_before_it_ends(
    server: ScriptedServer, client: HttpClient
) -> None:
    go_on = asyncio.Event()

    @server.route("/stream")
    async def stream(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(chunk(b"data: 1\n\n"))
        await writer.drain()
        await go_on.wait()  # the second piece only after the client got the first
        writer.write(chunk(b"data: 2\n\n") + b"0\r\n\r\n")
        return True

    async with await client.request("GET", server.url("/stream")) as response:
        pieces = aiter(response)
        assert await anext(pieces) == b"data: 1\n\n"
        assert not response.complete
        go_on.set()
        assert [piece async for piece in pieces] == [b"data: 2\n\n"]
    assert client.open_connections == 1  # finished cleanly: kept for reuse


async def test_a_connection_the_server_closed_while_idle_is_not_handed_out(
    server: ScriptedServer, client: HttpClient
) -> None:
    server.idle_close_s = 0.05
    assert await get(client, server.url("/hello")) == (200, b"hello")
    await eventually(lambda: client.open_connections == 0, 2)
    assert await get(client, server.url("/hello")) == (200, b"hello")
    assert server.accepted == 2


async def test_an_idle_connection_past_keepalive_is_not_reused(server: ScriptedServer) -> None:
    async with HttpClient(keepalive_s=0.05) as client:
        assert await get(client, server.url("/hello")) == (200, b"hello")
        await asyncio.sleep(0.1)
        assert await get(client, server.url("/hello")) == (200, b"hello")
        assert server.accepted == 2
        assert client.open_connections == 1


async def test_connection_close_from_either_side_is_not_reused(
    server: ScriptedServer, client: HttpClient
) -> None:
    @server.route("/close")
    async def close(request: Request, writer: Writer) -> bool:
        # Says close and keeps the socket open a while, as a lazy server might.
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.2)
        return False

    assert await get(client, server.url("/close")) == (200, b"ok")
    assert client.open_connections == 0
    assert await get(client, server.url("/hello"), headers={"Connection": "close"}) == (
        200,
        b"hello",
    )
    assert client.open_connections == 0
    assert await get(client, server.url("/hello")) == (200, b"hello")
    assert server.accepted == 3


async def test_headers_and_total_timeouts(server: ScriptedServer, client: HttpClient) -> None:
    @server.route("/no-answer")
    async def no_answer(request: Request, writer: Writer) -> bool:
        await server.hang()
        return False

    @server.route("/stalls")
    async def stalls(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await server.hang()
        return False

    with pytest.raises(Timeout) as info:
        await client.request("GET", server.url("/no-answer"), timeouts=HttpTimeouts(1, 0.1, 5))
    assert info.value.phase == "headers"
    response = await client.request("GET", server.url("/stalls"), timeouts=HttpTimeouts(1, 1, 0.2))
    with pytest.raises(Timeout) as info:
        await response.read()
    assert info.value.phase == "total"
    await eventually(lambda: client.open_connections == 0, 2)


async def test_a_connect_that_does_not_finish_times_out(server: ScriptedServer) -> None:
    # A plain-TCP server never answers the TLS handshake: the connect phase never ends.
    async with HttpClient() as client:
        with pytest.raises(Timeout) as info:
            await client.request(
                "GET",
                f"https://127.0.0.1:{server.port}/hello",
                timeouts=HttpTimeouts(0.2, 5, 5),
            )
        assert info.value.phase == "connect"
        assert client.open_connections == 0


async def test_cancelling_mid_body_closes_the_connection(
    server: ScriptedServer, client: HttpClient
) -> None:
    @server.route("/slow-stream")
    async def slow_stream(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"first"))
        await writer.drain()
        await server.until_client_leaves(request)
        return False

    got_first = asyncio.Event()

    async def reader() -> None:
        async with await client.request("GET", server.url("/slow-stream")) as response:
            async for _ in response:
                got_first.set()

    task = asyncio.create_task(reader())
    await got_first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: client.open_connections == 0, 2, what="client side")
    await eventually(lambda: server.closed_by_peer == 1, 2, what="server side")
    assert await get(client, server.url("/hello")) == (200, b"hello")
    assert server.accepted == 2


async def test_a_response_closed_unread_takes_its_connection_down(
    server: ScriptedServer, client: HttpClient
) -> None:
    @server.route("/big")
    async def big(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        await server.hang()
        return False

    response = await client.request("GET", server.url("/big"))
    response.close()
    await eventually(lambda: client.open_connections == 0, 2)
    with pytest.raises(ConnectionClosed):
        await response.read()


async def test_a_lagging_reader_stops_the_socket_and_resumes_it(
    server: ScriptedServer, client: HttpClient
) -> None:
    size = 8 * 1024 * 1024

    @server.route("/flood")
    async def flood(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 16384):
            writer.write(b"y" * 16384)
            await writer.drain()
        return True

    async with await client.request("GET", server.url("/flood")) as response:
        received = len(await anext(aiter(response)))
        await asyncio.sleep(0.3)  # the server keeps sending; the client must stop reading
        assert response.buffered <= HIGH_WATER + 256 * 1024
        async for piece in response:
            received += len(piece)
    assert received == size


async def test_the_pool_cap_queues_requests_and_times_out_the_wait(
    server: ScriptedServer,
) -> None:
    @server.route("/slow")
    async def slow(request: Request, writer: Writer) -> bool:
        await asyncio.sleep(0.1)
        writer.write(HELLO)
        return True

    async with HttpClient(max_connections=2) as client:
        results = await asyncio.gather(*(get(client, server.url("/slow")) for _ in range(6)))
        assert results == [(200, b"hello")] * 6
        assert server.most_open == 2
        assert client.open_connections == 2
        busy = [asyncio.create_task(get(client, server.url("/slow"))) for _ in range(2)]
        await asyncio.sleep(0.02)
        with pytest.raises(Timeout) as info:
            await client.request("GET", server.url("/hello"), timeouts=HttpTimeouts(1, 0.03, 1))
        assert info.value.phase == "pool"
        await asyncio.gather(*busy)


async def test_an_idle_connection_of_another_origin_makes_room(server: ScriptedServer) -> None:
    async with scripted_server() as other, HttpClient(max_connections=1) as client:
        other.handlers["/hello"] = server.handlers["/hello"]
        assert await get(client, server.url("/hello")) == (200, b"hello")
        assert await get(client, other.url("/hello")) == (200, b"hello")
        assert client.open_connections == 1


async def test_transport_failures_are_told_apart(
    server: ScriptedServer, client: HttpClient
) -> None:
    @server.route("/garbage")
    async def garbage(request: Request, writer: Writer) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        return True

    @server.route("/hang-up")
    async def hang_up(request: Request, writer: Writer) -> bool:
        return False

    @server.route("/cut")
    async def cut(request: Request, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        return False

    with pytest.raises(MalformedResponse):
        await client.request("GET", server.url("/garbage"))
    with pytest.raises(ConnectionClosed):
        await client.request("GET", server.url("/hang-up"))
    with pytest.raises(ConnectionClosed):
        await get(client, server.url("/cut"))
    with pytest.raises(ConnectFailed):
        await client.request("GET", f"http://127.0.0.1:{unused_port()}/")
    await eventually(lambda: client.open_connections == 0, 2)


async def test_gzip_is_decoded_and_headers_are_case_insensitive(
    server: ScriptedServer, client: HttpClient
) -> None:
    body = gzip.compress(b"unzipped " * 100)

    @server.route("/gzip")
    async def gzipped(request: Request, writer: Writer) -> bool:
        head = b"HTTP/1.1 429 Too Many\r\nretry-after: 7\r\nContent-Encoding: gzip\r\n"
        writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return True

    async with await client.request("GET", server.url("/gzip")) as response:
        assert response.status == 429
        assert response.headers.get("Retry-After") == "7"
        assert await response.read() == b"unzipped " * 100


async def test_close_closes_everything(server: ScriptedServer) -> None:
    client = HttpClient()
    assert await get(client, server.url("/hello")) == (200, b"hello")
    stalled = await client.request("GET", server.url("/hello"))  # busy until read
    await client.aclose()
    assert client.open_connections == 0
    await eventually(lambda: server.open_now == 0, 2)
    with pytest.raises(ConnectFailed):
        await client.request("GET", server.url("/hello"))
    stalled.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_with_server_name_verification(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    async with scripted_server(server_side, host="localhost") as server:

        @server.route("/hello")
        async def hello(request: Request, writer: Writer) -> bool:
            writer.write(HELLO)
            return True

        trusting = ssl.create_default_context(cafile=str(cert))
        async with HttpClient(ssl_context=trusting) as client:
            assert await get(client, server.url("/hello")) == (200, b"hello")
            assert await get(client, server.url("/hello")) == (200, b"hello")
            assert server.accepted == 1
        async with HttpClient() as untrusting:  # system CAs: the self-signed cert fails
            with pytest.raises(ConnectFailed):
                await untrusting.request("GET", server.url("/hello"))


def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
