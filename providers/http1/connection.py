"""One keep-alive HTTP/1.1 connection: writes a request, parses its response into a `Response`.

Reuse decisions (keep-alive, `Connection: close`, the server hanging up) are made here;
which connection serves which request is the pool's business.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from providers.http1.errors import ConnectionClosed, HttpClientError, MalformedResponse
from providers.http1.response import Headers, Response

if TYPE_CHECKING:
    from providers.http1.pool import Origin


class Owner(Protocol):
    """The pool a connection reports to."""

    def release(self, conn: Connection) -> None: ...

    def discard(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    def __init__(self, origin: Origin, owner: Owner) -> None:
        self.origin = origin
        self.closed = False
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

    def send(self, response: Response, data: bytes, keep_alive: bool) -> None:
        """Write one request whose answer goes to `response`."""
        assert self._transport is not None and self.response is None
        self.response = response
        self._keep_alive = keep_alive
        self._raw = []
        self._framed = False
        self._encoding = None
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
                response.fail(ConnectionClosed(message))
        if not was_closed:
            self._owner.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            cause = exc.__context__ if isinstance(exc.__context__, HttpClientError) else exc
            error = MalformedResponse(f"malformed HTTP response: {cause}")
            response, self.response = self.response, None
            if response is not None:
                response.fail(error)
            self.abort()

    # -- httptools

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))
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
