"""`HttpClient`: pooled HTTP/1.1 requests to upstreams, http and https, with per-request timeouts.

Lean on purpose (the upstream call is on every request's path): no cookies, redirects, proxies
or retries. `await request(...)` returns once the headers are in; read or iterate the body.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from providers.http1.pool import Origin, Pool
from providers.http1.response import HttpTimeouts, Response

MAX_CONNECTIONS = 1000
KEEPALIVE_S = 60.0  # an idle connection older than this is not reused
_OURS = frozenset({"host", "content-length", "transfer-encoding"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_URL_CACHE = 1024
DEFAULT_TIMEOUTS = HttpTimeouts()


@dataclass(frozen=True, slots=True)
class _Target:
    origin: Origin
    host: str  # the Host header
    path: str  # the request target: path and query


class HttpClient:
    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        keepalive_s: float = KEEPALIVE_S,
        timeouts: HttpTimeouts = DEFAULT_TIMEOUTS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeouts = timeouts
        self._pool = Pool(max_connections, keepalive_s)
        self._ssl = ssl_context
        self._targets: dict[str, _Target] = {}

    @property
    def open_connections(self) -> int:
        """Connections open now (connecting, busy or idle)."""
        return self._pool.open_connections

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeouts: HttpTimeouts | None = None,
    ) -> Response:
        """Send one request; return once the response headers are in. Close the response."""
        target = self._targets.get(url) or self._target(url)
        head, keep_alive = _head(method, target, headers, len(body))
        t = timeouts or self.timeouts
        loop = asyncio.get_running_loop()
        now = loop.time()
        total_at = now + t.total
        headers_at = min(now + t.headers, total_at)
        conn = self._pool.take_idle(target.origin)
        if conn is None:
            conn = await self._pool.acquire(target.origin, t.connect, headers_at, t.headers)
        response = Response(conn, loop, t, headers_at, total_at)
        try:
            conn.send(response, head + body if body else head, keep_alive)
            await response.wait_headers()
        except BaseException:
            response.close()
            raise
        return response

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail with `ConnectionClosed`."""
        await self._pool.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        default_port = 443 if scheme == "https" else 80
        port = parts.port or default_port
        host = parts.hostname
        named = f"[{host}]" if ":" in host else host
        ssl_context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ssl_context = self._ssl
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = _Target(
            self._pool.origin(host, port, ssl_context),
            named if port == default_port else f"{named}:{port}",
            path,
        )
        if len(self._targets) >= _URL_CACHE:
            self._targets.clear()
        self._targets[url] = target
        return target


def _head(
    method: str, target: _Target, headers: Mapping[str, str] | None, length: int
) -> tuple[bytes, bool]:
    """The request line and headers, and whether the connection may be kept."""
    if method == "HEAD":  # its answer's framing would need the parser told; nobody needs it
        raise ValueError("HEAD requests are not supported")
    parts = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.host}\r\n"]
    keep_alive = True
    identity = True
    if headers:
        for name, value in headers.items():
            lower = name.lower()
            if lower in _OURS:
                continue
            if lower == "connection":
                keep_alive = value.lower() != "close"
            elif lower == "accept-encoding":
                identity = False
            parts.append(f"{name}: {value}\r\n")
    if identity:
        parts.append("Accept-Encoding: identity\r\n")
    if length or method in _BODY_METHODS:
        parts.append(f"Content-Length: {length}\r\n")
    parts.append("\r\n")
    text = "".join(parts)
    lines = len(parts) + 1
    if text.count("\n") != lines or text.count("\r") != lines:  # a header or URL broke a line
        raise ValueError("line break in a request header or target")
    return text.encode("latin-1"), keep_alive
