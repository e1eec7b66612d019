"""`UpstreamTransport`: the one seam between the adapters and the network.

A request goes in (method, URL, headers, body, timeouts); a response comes out once its headers
are in: `status`, `headers.get(name)`, then `aiter_bytes()` or `read()`, and always `aclose()`.
Implementations: `providers.http1.HttpClient` (the default), `providers.httpx_transport` (HTTP/2,
SOCKS, proxy authentication schemes) and `providers.memory_transport` (adapter unit tests).

Every implementation raises the `providers.http1.errors` classes, with `received` set when any
byte of the answer had arrived; `providers.openai_compatible.upstream_errors` maps them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from providers.http1.response import HttpTimeouts


class ResponseHeaders(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


class UpstreamResponse(Protocol):
    status: int

    @property
    def headers(self) -> ResponseHeaders: ...

    @property
    def complete(self) -> bool:
        """The whole body has arrived (it may not all have been read yet)."""
        ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def read(self, limit: int | None = None) -> bytes:
        """The body; with `limit`, at most its first `limit` bytes (the rest is dropped)."""
        ...

    async def aclose(self) -> None:
        """Done with it; a body not read to its end takes its connection down."""
        ...


class UpstreamTransport(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeouts: HttpTimeouts | None = None,
        keepalive_s: float | None = None,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
