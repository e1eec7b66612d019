"""The HTTP client's own failures; `providers.openai_compatible.upstream_errors` maps them.

Raised by `HttpClient.request` and by reading a `Response`:

    HttpClientError
    ├── ConnectFailed        DNS, refused, TLS handshake, or the client is closed
    ├── ConnectionClosed     the server closed or reset the connection before the response ended
    ├── Timeout              `.phase`: connect, pool (no free connection), headers, idle or total
    ├── MalformedResponse    not parseable as an HTTP/1.1 response
    └── TooLarge             headers or (decoded) body past the client's limits

Every error says whether any byte of the response had arrived (`received`; `status` once the
head had): a request that got one was seen and maybe served by the upstream, so it must never be
sent to it again.
"""

from __future__ import annotations

from typing import Literal

TimeoutPhase = Literal["connect", "pool", "headers", "idle", "total"]


class HttpClientError(Exception):
    """Any transport failure of one request."""

    received = False  # set on the instance once a byte of the response had arrived
    status = 0  # the response's status, when its head had arrived


class ConnectFailed(HttpClientError):
    pass


class ConnectionClosed(HttpClientError):
    pass


class Timeout(HttpClientError):
    def __init__(self, phase: TimeoutPhase, seconds: float) -> None:
        super().__init__(f"{phase} timeout after {seconds:g}s")
        self.phase: TimeoutPhase = phase


class MalformedResponse(HttpClientError):
    pass


class TooLarge(MalformedResponse):
    """Headers or a (decompressed) body bigger than the client accepts."""
