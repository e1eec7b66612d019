"""A minimal streaming (SSE) client on keep-alive connections that timestamps every event.

For TTFT, time per relayed chunk, "is each chunk forwarded as it arrives" and many open
streams; not a general HTTP client (POST only, httptools parses the response).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import httptools

EVENT_END = b"\n\n"


@dataclass
class StreamTiming:
    """One streamed answer as the client saw it."""

    status: int = 0
    sent_at: float = 0.0
    event_times: list[float] = field(default_factory=list)  # when each event was complete
    events_per_read: list[int] = field(default_factory=list)  # reads that completed events

    @property
    def ttft_s(self) -> float:
        return self.event_times[0] - self.sent_at

    @property
    def events(self) -> int:
        return len(self.event_times)


class _SseProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.timing = StreamTiming()
        self.first_event = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[StreamTiming] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self._pending = b""
        self._completed_in_read = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.done, self.first_event):
            if not future.done():
                future.set_exception(ConnectionError("connection closed mid-stream"))
                future.exception()  # whoever awaits it still gets the error; nobody else logs it
        if not self.closed.done():
            self.closed.set_result(None)

    def start(self) -> None:
        self.timing = StreamTiming(sent_at=time.perf_counter())
        loop = asyncio.get_running_loop()
        self.first_event, self.done = loop.create_future(), loop.create_future()

    def data_received(self, data: bytes) -> None:
        self._completed_in_read = 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.done.done():
                self.done.set_exception(exc)
        if self._completed_in_read:
            self.timing.events_per_read.append(self._completed_in_read)

    def on_status(self, status: bytes) -> None:
        self.timing.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        data = self._pending + body
        complete = data.count(EVENT_END)
        if complete:
            now = time.perf_counter()
            self.timing.event_times.extend([now] * complete)
            self._completed_in_read += complete
            data = data[data.rindex(EVENT_END) + len(EVENT_END) :]
            if not self.first_event.done():
                self.first_event.set_result(None)
        self._pending = data

    def on_message_complete(self) -> None:
        self._pending = b""
        if not self.done.done():
            self.done.set_result(self.timing)


class SseConnection:
    """One keep-alive connection sending streaming POSTs one after another."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._protocol: _SseProtocol | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_SseProtocol, self._host, self._port)
        self._protocol = protocol

    def _request(self, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
        head += "Content-Type: application/json\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    async def send(self, path: str, body: bytes, headers: Mapping[str, str]) -> _SseProtocol:
        if self._protocol is None:
            await self.connect()
        protocol = self._protocol
        assert protocol is not None and protocol.transport is not None
        protocol.start()
        protocol.transport.write(self._request(path, body, headers))
        return protocol

    async def stream(self, path: str, body: bytes, headers: Mapping[str, str]) -> StreamTiming:
        """Send one request and wait for its whole answer."""
        protocol = await self.send(path, body, headers)
        return await protocol.done

    async def close(self) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            await protocol.closed
        self._protocol = None


async def open_streams(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    count: int,
    timeout_s: float,
    parallel: int = 50,
) -> list[SseConnection]:
    """`count` streams that have each received their first event; the caller closes them."""
    gate = asyncio.Semaphore(parallel)  # don't flood the accept backlog

    async def one() -> SseConnection:
        async with gate:
            connection = SseConnection(host, port)
            protocol = await connection.send(path, body, headers)
            await protocol.first_event
            return connection

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    try:
        async with asyncio.timeout(timeout_s):
            return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        opened = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in opened if isinstance(c, SseConnection)))
        raise
