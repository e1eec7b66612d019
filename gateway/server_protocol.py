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


class _Refused(Exception):
    """Stops the parser: the answer has been written and the connection is closing."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits: ServerLimits | None = None  # None: from the environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits or _from_environment()
        self._head_bytes = 0
        self._head_count = 0
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, status: int | None) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, status)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, status: int | None) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if status is not None and (self.cycle is None or self.cycle.response_complete):
            self._answer(status, "request_timeout", "the request headers did not arrive in time")
        self.transport.close()  # a body that stalls: the app sees the client leave

    def _answer(self, status: int, code: str, message: str) -> None:
        body = error_body(status, message, code)
        head = b"HTTP/1.1 %d %s\r\n" % (status, STATUS_TEXT[status])
        head += b"content-type: application/json\r\nconnection: close\r\n"
        head += b"content-length: %d\r\n\r\n" % len(body)
        self.transport.write(head + body)
        self.transport.close()

    def _refuse_headers(self) -> None:
        self._refused = True
        self._disarm()
        limits = self._limits
        self._answer(
            431,
            "headers_too_large",
            f"request headers exceed {limits.header_count} fields or {limits.header_bytes} bytes",
        )
        raise _Refused

    # -- connection and parser callbacks

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._limits.header_timeout_s, 408)  # a new connection owes its first request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what httptools can't parse, in the error shape every client reads;
        # after our own 431 the parser was stopped on purpose and nothing more is sent.
        if not self._refused:
            self._refused = True
            self._disarm()
            self._answer(400, "bad_request", "invalid HTTP request")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_count = 0
        self._arm(self._limits.header_timeout_s, 408)

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self._limits.header_bytes:
            self._refuse_headers()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        self._head_count += 1
        limits = self._limits
        if self._head_bytes > limits.header_bytes or self._head_count > limits.header_count:
            self._refuse_headers()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._arm(self._limits.body_timeout_s, None)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def protocol_with(server: ServerSettings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with these limits (in-process servers; workers read the environment)."""
    return type(
        "ConfiguredHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"limits": ServerLimits.of(server)},
    )
