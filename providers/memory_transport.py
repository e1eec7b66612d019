"""An in-memory `UpstreamTransport` answering from a function, for adapter unit tests (as
httpx's `MockTransport`). No sockets, no timers: what the function returns is the answer.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from providers.http1.errors import HttpClientError
from providers.http1.response import HttpTimeouts


@dataclass(frozen=True, slots=True)
class MemoryRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    timeouts: HttpTimeouts | None


class MemoryHeaders:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = {k.lower(): v for k, v in headers.items()}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name.lower(), default)


@dataclass
class MemoryResponse:
    """An answer: `chunks` of body, then `error` raised (a cut body) if set."""

    status: int = 200
    header_map: Mapping[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    error: HttpClientError | None = None
    closed: bool = False
    _sent: int = 0

    @classmethod
    def of(
        cls, status: int = 200, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> MemoryResponse:
        return cls(status, headers or {}, [body] if body else [])

    @property
    def headers(self) -> MemoryHeaders:
        return MemoryHeaders(self.header_map)

    @property
    def complete(self) -> bool:
        return self.error is None and self._sent >= len(self.chunks)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while self._sent < len(self.chunks):
            self._sent += 1
            yield self.chunks[self._sent - 1]
        if self.error is not None:
            self.error.received, self.error.status = True, self.status
            raise self.error

    async def read(self, limit: int | None = None) -> bytes:
        data = b"".join([chunk async for chunk in self.aiter_bytes()])
        return data if limit is None else data[:limit]

    async def aclose(self) -> None:
        self.closed = True


Handler = Callable[[MemoryRequest], MemoryResponse | Awaitable[MemoryResponse]]


class MemoryTransport:
    """Calls `handler` for every request; `requests` keeps them in order. A handler raising an
    `HttpClientError` is a failure before any answer (refused, reset, timed out)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[MemoryRequest] = []
        self.closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeouts: HttpTimeouts | None = None,
        keepalive_s: float | None = None,
    ) -> MemoryResponse:
        request = MemoryRequest(method, url, dict(headers or {}), body, timeouts)
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def aclose(self) -> None:
        self.closed = True
