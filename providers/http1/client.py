"""`HttpClient`: pooled HTTP/1.1 requests to upstreams, http and https, with per-request timeouts.

Lean on purpose (the upstream call is on every request's path): no cookies, redirects or
retries, except one: a request whose reused keep-alive connection turns out closed at once
(within STALE_WINDOW_S, before any byte of the answer) is sent once more on a new connection.
Proxies come from the environment (`providers.http1.proxy`). `await request(...)` returns once
the headers are in; read or iterate the body.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from providers.http1.connection import Connection
from providers.http1.errors import ConnectFailed, ConnectionClosed, Timeout
from providers.http1.limits import KEEPALIVE_S, MAX_CONNECTIONS, MAX_PER_ORIGIN, Limits
from providers.http1.pool import Origin, Pool, Resolver, system_resolver
from providers.http1.proxy import ProxyRules
from providers.http1.response import HttpTimeouts, Response

USER_AGENT = "llm-routing-gateway/0.1"
# A reused connection that fails this soon after the request went out, with no byte back, lost a
# keep-alive race (the server had closed it; its FIN or RST crossed our request): about one round
# trip. Later, the server more likely died while working on it: that failure counts.
STALE_WINDOW_S = 1.0
_OURS = frozenset({"host", "content-length", "transfer-encoding"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_URL_CACHE = 1024
DEFAULT_TIMEOUTS = HttpTimeouts()


@dataclass(frozen=True, slots=True)
class _Target:
    origin: Origin
    host: str  # the Host header
    path: str  # the request target: path and query (the whole URL through an http proxy)
    proxy_authorization: str | None = None


def tls_context(
    ca_bundle: str | None = None, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext:
    """Verifying TLS settings: the system's CAs or `ca_bundle`, and a client certificate."""
    context = ssl.create_default_context(cafile=ca_bundle)
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context


class HttpClient:
    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        keepalive_s: float = KEEPALIVE_S,
        timeouts: HttpTimeouts = DEFAULT_TIMEOUTS,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits | None = None,
        proxies: ProxyRules | None = None,
        user_agent: str = USER_AGENT,
        resolver: Resolver = system_resolver,
    ) -> None:
        """`limits` wins over `max_connections` and `keepalive_s`; `proxies` defaults to the
        environment's."""
        self.timeouts = timeouts
        limits = limits or Limits(
            max_connections=max_connections,
            max_per_origin=min(MAX_PER_ORIGIN, max_connections),
            keepalive_s=keepalive_s,
        )
        self.limits = limits
        self._pool = Pool(limits, resolver)
        self._ssl = ssl_context
        self._proxies = ProxyRules() if proxies is None else proxies
        self._user_agent = f"User-Agent: {user_agent}\r\n" if user_agent else ""
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
        keepalive_s: float | None = None,
    ) -> Response:
        """Send one request; return once the response headers are in. Close the response.

        `keepalive_s`: how long this URL's origin keeps idle connections (its endpoint's
        setting; the client's default when None).
        """
        target = self._targets.get(url) or self._target(url)
        origin = target.origin
        if keepalive_s is not None:
            origin.keepalive_s = keepalive_s
        head, keep_alive = _head(method, target, headers, len(body), self._user_agent)
        data = head + body if body else head
        t = timeouts or self.timeouts
        loop = asyncio.get_running_loop()
        now = loop.time()
        total_at = now + t.total
        headers_at = min(now + t.headers, total_at)
        conn = self._pool.take_idle(origin)
        if conn is None:
            conn = await self._pool.acquire(origin, t.connect, headers_at, t.headers)
        sent_at = loop.time()
        try:
            return await self._exchange(conn, data, keep_alive, loop, t, headers_at, total_at)
        except ConnectionClosed as exc:
            if conn.exchanges < 2 or exc.received or loop.time() - sent_at > STALE_WINDOW_S:
                raise
            stale = exc
        # A reused connection the server had already closed (a keep-alive race): it saw
        # nothing of this request, so it goes once more, on a new connection. If that can't
        # even be opened, the server is gone: the first failure is the one to report.
        try:
            conn = await self._pool.acquire(origin, t.connect, headers_at, t.headers, fresh=True)
        except (ConnectFailed, Timeout) as exc:
            raise stale from exc
        return await self._exchange(conn, data, keep_alive, loop, t, headers_at, total_at)

    async def _exchange(
        self,
        conn: Connection,
        data: bytes,
        keep_alive: bool,
        loop: asyncio.AbstractEventLoop,
        t: HttpTimeouts,
        headers_at: float,
        total_at: float,
    ) -> Response:
        response = Response(conn, loop, t, headers_at, total_at, self.limits.max_decoded_bytes)
        try:
            conn.send(response, data, keep_alive)
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
        authority = named if port == default_port else f"{named}:{port}"
        proxy = self._proxies.for_target(scheme, host, port) if self._proxies else None
        authorization = None
        if proxy is not None and ssl_context is None:  # plain http: the proxy gets the whole URL
            path = f"http://{authority}{path}"
            authorization = proxy.authorization
        target = _Target(
            self._pool.origin(host, port, ssl_context, proxy), authority, path, authorization
        )
        if len(self._targets) >= _URL_CACHE:
            self._targets.clear()
        self._targets[url] = target
        return target


def _head(
    method: str,
    target: _Target,
    headers: Mapping[str, str] | None,
    length: int,
    user_agent: str = "",
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
            elif lower == "user-agent":
                user_agent = ""
            parts.append(f"{name}: {value}\r\n")
    if identity:
        parts.append("Accept-Encoding: identity\r\n")
    if user_agent:
        parts.append(user_agent)
    if target.proxy_authorization is not None:
        parts.append(f"Proxy-Authorization: {target.proxy_authorization}\r\n")
    if length or method in _BODY_METHODS:
        parts.append(f"Content-Length: {length}\r\n")
    parts.append("\r\n")
    text = "".join(parts)
    lines = len(parts) + 1
    if text.count("\n") != lines or text.count("\r") != lines:  # a header or URL broke a line
        raise ValueError("line break in a request header or target")
    return text.encode("latin-1"), keep_alive
