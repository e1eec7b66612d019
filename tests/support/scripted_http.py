"""A raw HTTP/1.1 server on loopback whose answers tests script byte by byte, per path.

For testing the gateway's own HTTP client: framings, keep-alive, hang-ups, hangs and streams
that a framework server would not produce on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes
    connection: int  # which accepted connection (1, 2, ...) carried it
    reader: asyncio.StreamReader = field(repr=False)


# A handler writes the answer; it returns False to close the connection afterwards.
Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class ScriptedServer:
    port: int = 0
    scheme: str = "http"
    host: str = "127.0.0.1"
    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    accepted: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_peer: int = 0  # connections the client ended (EOF or reset)
    idle_close_s: float | None = None  # hang up on a connection idle this long
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # hanging handlers end on it
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def hang(self) -> None:
        """What a handler awaits to never answer (until the server stops)."""
        await self.stop.wait()

    async def until_client_leaves(self, request: Request) -> None:
        """Wait, answering nothing more, until the client drops the connection."""
        with contextlib.suppress(ConnectionError):
            await request.reader.read()
        self.closed_by_peer += 1

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def route(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.handlers[path] = handler
            return handler

        return register

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        self.writers.add(writer)
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_close_s):
                        request = await _read_request(reader, number)
                except TimeoutError:
                    return
                if request is None:
                    self.closed_by_peer += 1
                    return
                self.requests.append(request)
                handler = self.handlers.get(request.path, _not_found)
                if not await handler(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_peer += 1
        except asyncio.CancelledError:
            return
        finally:
            self.open_now -= 1
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader, connection: int) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body, connection, reader)


async def _not_found(request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    return True


def chunk(data: bytes) -> bytes:
    """One piece of a `Transfer-Encoding: chunked` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


@contextlib.asynccontextmanager
async def scripted_server(
    ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[ScriptedServer]:
    script = ScriptedServer(scheme="https" if ssl_context else "http", host=host)
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0, ssl=ssl_context)
    script.port = server.sockets[0].getsockname()[1]
    try:
        yield script
    finally:
        script.stop.set()
        server.close()
        for writer in list(script.writers):
            writer.transport.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await server.wait_closed()
