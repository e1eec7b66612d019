"""One keep-alive HTTP/1.1 connection: writes a request, parses its response into a `Response`.

Reuse decisions (keep-alive, `Connection: close`, the server hanging up) are made here;
which connection serves which request is the pool's business.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from providers.http1.errors import ConnectionClosed, HttpClientError, MalformedResponse, TooLarge
from providers.http1.limits import MAX_HEADER_BYTES
from providers.http1.response import Headers, Response

if TYPE_CHECKING:
    from providers.http1.pool import Origin


class Owner(Protocol):
    """The pool a connection reports to."""

    def release(self, conn: Connection) -> None: ...

    def discard(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """`exchanges` counts the requests sent on it (more than one: a reused connection) and `got`
    says whether any byte of the current response arrived: together they tell a stale keep-alive
    socket (safe to send again) from an answer cut short (never to be sent again)."""

    def __init__(
        self, origin: Origin, owner: Owner, max_header_bytes: int = MAX_HEADER_BYTES
    ) -> None:
        self.origin = origin
        self.closed = False
        self.exchanges = 0
        self.got = False
        self.counted = True  # holds one of the pool's slots until discarded
        self.idle = False  # in its origin's idle list
        self.idle_since = 0.0
        self.response: Response | None = None
        self._owner = owner
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._keep_alive = True
        self._raw: list[tuple[bytes, bytes]] = []
        self._framed = False  # Content-Length or Transfer-Encoding: not read until close
        self._encoding: bytes | None = None
        self._max_head = max_header_bytes
        self._head = 0  # bytes of the current response's head so far; -1 once it is complete
        self._fields = 0  # bytes of its header fields (a head completed in one read)

    def send(self, response: Response, data: bytes, keep_alive: bool) -> None:
        """Write one request whose answer goes to `response`."""
        assert self._transport is not None and self.response is None
        self.response = response
        self._keep_alive = keep_alive
        self._raw = []
        self._framed = False
        self._encoding = None
        self._head = self._fields = 0
        self.got = False
        self.exchanges += 1
        self._transport.write(data)

    @property
    def usable(self) -> bool:
        return not self.closed and self._transport is not None and not self._transport.is_closing()

    def pause_reading(self) -> None:
        if not self.closed and self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed and self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        """Close after what is written has gone out (a finished exchange)."""
        self._shut(abort=False)

    def abort(self) -> None:
        """Drop now (a failed or abandoned exchange)."""
        self._shut(abort=True)

    def _shut(self, abort: bool) -> None:
        self.response = None
        if self.closed:
            return
        self.closed = True
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()
        self._owner.discard(self)

    # -- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def eof_received(self) -> bool | None:
        if self.response is None:
            self.abort()  # hung up while idle: out of the pool before anyone takes it
        return None  # the transport closes; `connection_lost` settles a response in progress

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed, self.closed = self.closed, True
        response, self.response = self.response, None
        if response is not None:
            if exc is None and response.status and not self._framed:
                response.on_complete()  # a body delimited by the end of the connection
            else:
                reason = f": {exc}" if exc is not None else ""
                message = f"connection closed before the response ended{reason}"
                error = ConnectionClosed(message)
                error.received = self.got
                response.fail(error)
        if not was_closed:
            self._owner.discard(self)

    def data_received(self, data: bytes) -> None:
        self.got = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            cause = exc.__context__
            if isinstance(cause, HttpClientError):
                self._fail(cause)
            else:
                self._fail(MalformedResponse(f"malformed HTTP response: {exc}"))
            return
        if self._head >= 0:  # all of `data` was head: the headers are not complete yet
            self._head += len(data)
            if self._head > self._max_head:
                self._fail(TooLarge(f"response headers larger than {self._max_head} bytes"))

    def _fail(self, error: HttpClientError) -> None:
        response, self.response = self.response, None
        if response is not None:
            response.fail(error)
        self.abort()

    # -- httptools

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))
        self._fields += len(name) + len(value) + 4
        if self._fields > self._max_head:
            raise TooLarge(f"response headers larger than {self._max_head} bytes")
        size = len(name)
        if size == 14 or size == 16 or size == 17:
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                self._framed = True
            elif lower == b"content-encoding":
                self._encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None:
            raise MalformedResponse("a response nobody asked for")
        status = self._parser.get_status_code()
        if status < 200:  # interim (100 Continue, 103 Early Hints): the answer follows
            self._raw = []
            self._framed = False
            self._encoding = None
            return
        self._head = -1
        response.on_headers(status, Headers(self._raw), self._encoding)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response.on_body(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or not response.status:
            return  # the end of an interim response
        self.response = None
        reuse = self._keep_alive and self._parser.should_keep_alive()
        response.on_complete()
        if self.closed:
            return
        if reuse:
            self._owner.release(self)
        else:
            self.close()
