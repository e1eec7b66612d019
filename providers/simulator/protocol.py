"""A minimal HTTP/1.1 server protocol (httptools parser, keep-alive, in-order pipelining).

Just enough HTTP for the simulator to be fast and to misbehave on purpose (hang, reset, cut);
not a general web server: no TLS, no upgrades, no compression.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Any, cast

import httptools
import msgspec

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_PIPELINED = 16  # requests queued on one connection before reading pauses
JSON = "application/json"
_LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST instead of FIN


@dataclass(slots=True)
class Request:
    method: str
    path: str
    raw_headers: dict[bytes, bytes]  # names lower-cased, values as sent
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.raw_headers.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")


Handler = Callable[[Request, "Exchange"], Coroutine[Any, Any, None] | None]


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


_STATUS_LINES = {status.value: _status_line(status.value) for status in HTTPStatus}


@lru_cache(maxsize=256)
def _plain_head(status: int, content_type: str) -> bytes:
    """The head of a keep-alive response without extra headers, up to the content length."""
    status_line = _STATUS_LINES.get(status) or _status_line(status)
    return status_line + f"content-type: {content_type}\r\ncontent-length: ".encode("latin-1")


class Exchange:
    """The response side of one request: answer it, stream it, or misbehave on purpose."""

    __slots__ = ("_conn", "_streaming", "done", "keep_alive")

    def __init__(self, conn: HttpConnection, keep_alive: bool) -> None:
        self._conn = conn
        self._streaming = False
        self.keep_alive = keep_alive
        self.done = False

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def closed(self) -> bool:
        """The client is gone or the connection is being torn down."""
        return self._conn.closing

    def respond(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = JSON,
        headers: Iterable[tuple[str, str]] = (),
        truncate_at: int | None = None,
    ) -> None:
        """Send a whole response; with `truncate_at`, only that many body bytes, then close."""
        if headers or not self.keep_alive:
            head = self._head(status, content_type, headers, f"content-length: {len(body)}\r\n")
        else:
            head = _plain_head(status, content_type) + b"%d\r\n\r\n" % len(body)
        if truncate_at is None:
            self._conn.write(head + body)
            self._finish()
        else:
            self._conn.write(head + body[:truncate_at])
            self.cut()

    def start_stream(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        """Send the head of a chunked response; follow with `send` and `end_stream`."""
        extra = "transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
        self._conn.write(self._head(status, content_type, (), extra))
        self._streaming = True

    def send(self, data: bytes) -> None:
        if data and not self.closed:
            self._conn.write(b"%x\r\n%b\r\n" % (len(data), data))

    def end_stream(self) -> None:
        if not self.closed:
            self._conn.write(b"0\r\n\r\n")
        self._finish()

    async def drain(self) -> None:
        """Wait while the client reads slower than we write."""
        await self._conn.drain()

    def cut(self) -> None:
        """Close the connection mid-response (FIN): the client sees an incomplete body."""
        self.done = True
        self._conn.close()

    def reset(self) -> None:
        """Close the connection with RST before anything is sent."""
        self.done = True
        self._conn.reset()

    def hang(self, max_s: float) -> None:
        """Never answer; drop the connection after `max_s` unless the client leaves first."""
        self._conn.hang(max_s)

    def _head(
        self, status: int, content_type: str, headers: Iterable[tuple[str, str]], extra: str
    ) -> bytes:
        status_line = _STATUS_LINES.get(status) or _status_line(status)
        lines = [f"content-type: {content_type}\r\n", extra]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        if not self.keep_alive:
            lines.append("connection: close\r\n")
        lines.append("\r\n")
        return status_line + "".join(lines).encode("latin-1")

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self._conn.exchange_done(self)


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests, hand them to the handler one at a time, in order."""

    def __init__(self, handler: Handler, registry: set[HttpConnection]) -> None:
        self._handler = handler
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._pending: deque[tuple[Request, bool]] = deque()
        self._current: Exchange | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._dispatching = False
        self._reading_paused = False
        self._hung = False
        self._drained: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self.closing = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        if self._hung:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._registry.discard(self)
        if self._task is not None:
            self._task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self._wake_drain()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_drain()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self._headers.get(b"expect", b"").lower() == b"100-continue" and not self._current:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second without it

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size <= MAX_BODY_BYTES:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._body_size > MAX_BODY_BYTES:
            self._refuse(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            return
        path = self._url.partition(b"?")[0].decode("latin-1")
        method = self._parser.get_method().decode("latin-1")
        request = Request(method, path, self._headers, b"".join(self._body))
        self._pending.append((request, self._parser.should_keep_alive()))
        if len(self._pending) >= MAX_PIPELINED and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        self._dispatch()

    # used by Exchange

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.closing:
            self._transport.write(data)

    async def drain(self) -> None:
        if self._drained is not None and not self.closing:
            await asyncio.shield(self._drained)

    def exchange_done(self, exchange: Exchange) -> None:
        if exchange is not self._current:
            return
        self._current = None
        self._task = None
        if not exchange.keep_alive:
            self.close()
        else:
            self._dispatch()

    def close(self) -> None:
        self.closing = True
        if self._transport is not None:
            self._transport.close()

    def reset(self) -> None:
        self.closing = True
        if self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                logger.debug("could not set SO_LINGER; closing without reset")
        self._transport.abort()

    def hang(self, max_s: float) -> None:
        # Keep reading (and discarding) so a client that gives up is noticed at once.
        self._hung = True
        self._pending.clear()
        self._timer = asyncio.get_running_loop().call_later(max_s, self.reset)

    # internals

    def _dispatch(self) -> None:
        if self._dispatching:
            return  # a handler answered synchronously; the loop below picks up the rest
        self._dispatching = True
        try:
            while self._current is None and self._pending and not self.closing:
                request, keep_alive = self._pending.popleft()
                self._current = Exchange(self, keep_alive)
                self._run(request, self._current)
            if self._reading_paused and len(self._pending) < MAX_PIPELINED and not self.closing:
                assert self._transport is not None
                self._transport.resume_reading()
                self._reading_paused = False
        finally:
            self._dispatching = False

    def _run(self, request: Request, exchange: Exchange) -> None:
        try:
            work = self._handler(request, exchange)
        except Exception:  # the server boundary: a handler bug must not kill the connection loop
            logger.exception("simulator handler failed", extra={"path": request.path})
            self._fail(exchange)
            return
        if work is not None and not exchange.done:
            self._task = asyncio.get_running_loop().create_task(work)
            self._task.add_done_callback(lambda task: self._task_done(task, exchange))
        elif work is not None:
            work.close()

    def _task_done(self, task: asyncio.Task[None], exchange: Exchange) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("simulator handler failed", exc_info=error)
            self._fail(exchange)
        elif not exchange.done and not exchange.closed:
            logger.error("simulator handler returned without answering")
            self._fail(exchange)

    def _fail(self, exchange: Exchange) -> None:
        if exchange.done or exchange.closed:
            return
        if exchange.streaming:
            exchange.cut()
        else:
            body = b'{"error":{"message":"simulator error","type":"server_error","code":null}}'
            exchange.respond(500, body)

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request we could not parse, then close: the byte stream is unusable."""
        self._pending.clear()
        if self._transport is None or self.closing:
            return
        if self._current is not None:
            self.close()  # mid-answer: no clean way to say more on this connection
            return
        error = {"message": message, "type": "invalid_request_error", "code": None}
        self._current = Exchange(self, keep_alive=False)
        self._current.respond(status, msgspec.json.encode({"error": error}))

    def _wake_drain(self) -> None:
        if self._drained is not None:
            if not self._drained.done():
                self._drained.set_result(None)
            self._drained = None
