"""One HTTP response as the caller sees it: status, headers, the body read whole or chunk by chunk.

Its connection feeds it; it holds the unread body, stops the socket when the reader lags, and
owns the request's header and total timeouts. Not the parser: that is `connection`.
"""

from __future__ import annotations

import asyncio
import sys
import zlib
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple

from providers.http1.errors import (
    ConnectionClosed,
    HttpClientError,
    MalformedResponse,
    Timeout,
    TooLarge,
)
from providers.http1.limits import MAX_DECODED_BYTES

if TYPE_CHECKING:
    from providers.http1.connection import Connection

HIGH_WATER = 64 * 1024  # unread body bytes past which the socket is no longer read
LOW_WATER = 16 * 1024  # ... and below which it is read again
_DECODED = frozenset({b"gzip", b"x-gzip", b"deflate"})
_EARLY = 0.001  # a timer may fire this much before its time (millisecond clocks)


class HttpTimeouts(NamedTuple):
    """Seconds: connect (new connections), until the response headers, the whole exchange, and
    the longest silence between two pieces of body (while the reader keeps up)."""

    connect: float = 5.0
    headers: float = 60.0
    total: float = 600.0
    idle: float = 60.0


class Headers:
    """Response headers as received; `get` is case-insensitive."""

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower().encode("latin-1")
        for k, v in self.raw:
            if len(k) == len(key) and k.lower() == key:
                return v.decode("latin-1")
        return default

    def items(self) -> Iterator[tuple[str, str]]:
        for k, v in self.raw:
            yield k.decode("latin-1"), v.decode("latin-1")


class Response:
    """Read with `await read()` or `async for chunk in response`; always `close()` when done.

    A response closed before its end takes its connection down with it, so a half-read
    connection never goes back to the pool.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_decoded",
        "_decoder",
        "_done",
        "_error",
        "_high",
        "_idle_armed",
        "_last",
        "_loop",
        "_max_decoded",
        "_paused",
        "_timeouts",
        "_timer",
        "_total_at",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(
        self,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        timeouts: HttpTimeouts,
        headers_at: float,
        total_at: float,
        max_decoded: int = MAX_DECODED_BYTES,
    ) -> None:
        self.status = 0
        self.headers = Headers([])
        self._conn: Connection | None = conn
        self._loop = loop
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._high = HIGH_WATER
        self._paused = False
        self._done = False
        self._error: HttpClientError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: zlib._Decompress | None = None
        self._decoded = 0
        self._max_decoded = max_decoded
        self._timeouts = timeouts
        self._total_at = total_at
        self._last = 0.0  # loop time the last piece of body (or the headers) arrived
        self._idle_armed = False
        # One timer: at the headers deadline it either fails or moves on to the total one.
        self._timer: asyncio.TimerHandle | None = loop.call_at(headers_at, self._on_timer)

    @property
    def buffered(self) -> int:
        """Body bytes received and not read yet."""
        return self._buffered

    @property
    def complete(self) -> bool:
        """The whole body has arrived (it may not all have been read yet)."""
        return self._done

    # -- the caller's side

    async def read(self, limit: int | None = None) -> bytes:
        """The body (its first `limit` bytes: then the rest is dropped with the connection)."""
        self._high = sys.maxsize
        if self._paused:
            self._resume()
        while not self._done:
            if self._error is not None:
                raise self._error
            if limit is not None and self._buffered >= limit:
                break
            await self._wait()
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._decoder is not None:
            data = self._decode(data)
        if not self._done:
            self.close()
        return data if limit is None else data[:limit]

    def __aiter__(self) -> Response:
        return self

    def aiter_bytes(self) -> Response:
        """The body piece by piece (`UpstreamTransport`'s spelling of iterating it)."""
        return self

    async def aclose(self) -> None:
        self.close()

    async def __anext__(self) -> bytes:
        """The next piece of body as it arrived (never waits for more than one to arrive)."""
        chunks = self._chunks
        while True:
            while not chunks:
                if self._done:
                    raise StopAsyncIteration
                if self._error is not None:
                    raise self._error
                await self._wait()
            chunk = chunks.popleft()
            self._buffered -= len(chunk)
            if self._paused and self._buffered <= LOW_WATER:
                self._resume()
            if self._decoder is not None:
                chunk = self._decode(chunk)
            if chunk:
                return chunk

    def close(self) -> None:
        """Done with it: a response not received to its end closes its connection."""
        if self._done:
            return
        if self._error is None:
            self._error = ConnectionClosed("response closed before its end")
        self._cancel_timer()
        self._chunks.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def wait_headers(self) -> None:
        while not self.status:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def _wait(self) -> None:
        if self.status and not self._idle_armed:
            self._arm_idle()
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _arm_idle(self) -> None:
        """Bring the timer forward to the idle deadline, once the reader first waits for body
        (an answer whose body came with its headers never pays for a timer change)."""
        self._idle_armed = True
        timer = self._timer
        idle_at = self._last + self._timeouts.idle
        if timer is not None and idle_at < timer.when():
            timer.cancel()
            self._timer = self._loop.call_at(min(idle_at, self._total_at), self._on_timer)

    def _decode(self, data: bytes) -> bytes:
        assert self._decoder is not None
        room = self._max_decoded - self._decoded
        try:
            out = self._decoder.decompress(data, room + 1)  # a bomb never inflates past the cap
        except zlib.error as exc:
            error: HttpClientError = MalformedResponse(f"undecodable body: {exc}")
            error.received, error.status = True, self.status
            self.fail(error)
            raise error from exc
        self._decoded += len(out)
        if len(out) > room:
            error = TooLarge(f"decoded body larger than {self._max_decoded} bytes")
            error.received, error.status = True, self.status
            self.fail(error)
            raise error
        return out

    def _resume(self) -> None:
        self._paused = False
        if self._conn is not None:
            self._conn.resume_reading()

    # -- the connection's side

    def on_headers(self, status: int, headers: Headers, encoding: bytes | None) -> None:
        self.status = status
        self.headers = headers
        self._last = self._loop.time()
        if encoding is not None and encoding != b"identity":
            if encoding not in _DECODED:
                self.fail(MalformedResponse(f"unsupported content-encoding {encoding!r}"))
                return
            self._decoder = zlib.decompressobj(wbits=47)  # gzip or zlib, by their header
        self._wake()

    def on_body(self, chunk: bytes) -> None:
        self._last = self._loop.time()
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > self._high and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def on_complete(self) -> None:
        self._done = True
        self._cancel_timer()
        if self._paused:
            self._resume()  # the connection may be reused: it must read again
        self._conn = None
        self._wake()

    def fail(self, exc: HttpClientError) -> None:
        if self._done or self._error is not None:
            return
        conn, self._conn = self._conn, None
        if self.status or (conn is not None and conn.got):
            exc.received = True
            exc.status = self.status
        self._error = exc
        self._cancel_timer()
        if conn is not None:
            conn.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._done:
            return
        t = self._timeouts
        now = self._loop.time()
        if not self.status:
            late = Timeout("headers", t.headers) if t.headers < t.total else None
            self.fail(late or Timeout("total", t.total))
            return
        if now >= self._total_at - _EARLY:
            self.fail(Timeout("total", t.total))
            return
        if self._paused:  # the reader lags, not the upstream: its silence doesn't count
            self._last = now
        idle_at = self._last + t.idle
        if now >= idle_at - _EARLY:
            self.fail(Timeout("idle", t.idle))
            return
        self._timer = self._loop.call_at(min(idle_at, self._total_at), self._on_timer)
