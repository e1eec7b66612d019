"""uvicorn's httptools protocol with the limits it lacks: request line + headers bounded in size
and count (431, before they are all buffered), a deadline for the headers (slow-loris: 408) and
for the body once the headers are in (then the connection is closed).

Used by `gateway serve` and the embedded server; with plain `uvicorn`, pass
`--http gateway.server_protocol:BoundedHttpToolsProtocol`. The app's own checks
(`gateway.edge`) still apply under any server.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.edge import HEAD_CHECKED
from gateway.errors import error_body
from gateway.settings import ServerSettings

STATUS_TEXT = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_bytes: int
    header_count: int
    header_timeout_s: float
    body_timeout_s: float

    @classmethod
    def of(cls, server: ServerSettings) -> ServerLimits:
        return cls(
            server.max_header_bytes,
            server.max_header_count,
            server.header_timeout_s,
            server.body_timeout_s,
        )


@functools.cache
def _from_environment() -> ServerLimits:
    # Workers are separate processes configured by the environment (`gateway serve` exports it).
    return ServerLimits.of(ServerSettings())


LINGER_S = 2.0  # after a refusal: how long the rest of what a client sends is read and dropped
_END_OF_HEAD = b"\r\n\r\n"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Bounds are kept per read, not per parser callback: while a request's head is arriving
    its bytes and lines are counted in `data_received` (C-speed `find`/`count` on the chunk),
    and one deadline per connection is kept lazily (a timer is armed at most once per phase
    that outlives it, not twice per request). A head may pass the byte bound by less than one
    read when it follows a pipelined request in the same read."""

    limits: ServerLimits | None = None  # None: from the environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits or _from_environment()
        self._in_head = True  # the next bytes belong to a request head
        self._head_bytes = 0  # of the current head so far
        self._head_lines = 0
        self._tail = b""  # the last bytes of the head so far: a terminator split across reads
        self._refused = False
        self._due = 0.0  # loop time the current phase must end by; 0: no deadline
        self._due_status: int | None = None  # 408 while the headers are awaited
        self._timer: asyncio.TimerHandle | None = None

    # -- the one deadline

    def _set_due(self, seconds: float, status: int | None) -> None:
        due = self._due = self.loop.time() + seconds
        self._due_status = status
        timer = self._timer
        if timer is None:
            self._timer = self.loop.call_at(due, self._check_due)
        elif timer.when() > due:
            timer.cancel()
            self._timer = self.loop.call_at(due, self._check_due)

    def _check_due(self) -> None:
        self._timer = None
        due = self._due
        if not due:
            return  # between requests: the server's keep-alive timeout applies
        if self.loop.time() < due:
            self._timer = self.loop.call_at(due, self._check_due)
            return
        self._expired(self._due_status)

    def _cancel_due(self) -> None:
        self._due = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, status: int | None) -> None:
        self._due = 0.0
        if self.transport.is_closing():
            return
        if status is not None and (self.cycle is None or self.cycle.response_complete):
            self._answer(status, "request_timeout", "the request headers did not arrive in time")
        self.transport.close()  # a body that stalls: the app sees the client leave

    def _answer(self, status: int, code: str, message: str) -> None:
        """Answer and end the connection. What the client is still sending is read and dropped
        for up to `LINGER_S` (a lingering close): closing with unread input would reset the
        connection and could destroy the answer before the client reads it."""
        body = error_body(status, message, code)
        head = b"HTTP/1.1 %d %s\r\n" % (status, STATUS_TEXT[status])
        head += b"content-type: application/json\r\nconnection: close\r\n"
        head += b"content-length: %d\r\n\r\n" % len(body)
        transport = self.transport
        transport.write(head + body)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.loop.call_later(LINGER_S, transport.close)

    # -- the head's bounds

    def _head_fits(self, data: bytes) -> bool:
        """Count this read's share of the current head; False (and 431 sent) past a bound."""
        if not self._head_bytes:
            self._set_due(self._limits.header_timeout_s, 408)  # a new head's first bytes
        end = data.find(_END_OF_HEAD)
        if end >= 0:
            size = end + 4  # the rest is the body (or a pipelined request)
        else:
            size = len(data)
            tail = self._tail  # the terminator may have begun in the previous read
            split = (tail + data[:3]).find(_END_OF_HEAD) if tail else -1
            if split >= 0:
                size = split + 4 - len(tail)
            else:
                self._tail = data[-3:]
        self._head_bytes += size
        self._head_lines += data.count(b"\n", 0, size)
        limits = self._limits
        # Lines: the request line, the fields and the empty line that ends the head.
        if self._head_bytes <= limits.header_bytes and self._head_lines <= limits.header_count + 2:
            return True
        self._refused = True
        self._cancel_due()
        self._answer(
            431,
            "headers_too_large",
            f"request headers exceed {limits.header_count} fields or {limits.header_bytes} bytes",
        )
        return False

    # -- connection and parser callbacks

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._set_due(self._limits.header_timeout_s, 408)  # a new connection owes a request

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_due()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or (self._in_head and not self._head_fits(data)):
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what httptools can't parse, in the error shape every client reads.
        if not self._refused:
            self._refused = True
            self._cancel_due()
            self._answer(400, "bad_request", "invalid HTTP request")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._set_due(self._limits.body_timeout_s, None)
        self.scope[HEAD_CHECKED] = True  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._due = 0.0
        self._in_head = True
        self._head_bytes = self._head_lines = 0
        self._tail = b""
        super().on_message_complete()


def protocol_with(server: ServerSettings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with these limits (in-process servers; workers read the environment)."""
    return type(
        "ConfiguredHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"limits": ServerLimits.of(server)},
    )
