"""The gateway's outer ASGI layer: what every HTTP request passes before routing.

Header count and size (431), the per-worker concurrency cap (503), and the auth policy of the
connection: `GATEWAY_AUTH` when set, else off only when `GATEWAY_HOST` and the local address
the request arrived on are both loopback. With auth off, a request whose `Host` or `Origin` is
not loopback is refused (403): that is what keeps web pages (CSRF, DNS rebinding) out.
"""

from __future__ import annotations

import ipaddress
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.errors import error_body
from gateway.settings import ServerSettings

AUTH_REQUIRED = "gateway.auth_required"  # scope key: this request's auth policy (bool)
HEAD_CHECKED = "gateway.head_checked"  # scope key: the server bounded this head already
JSON_HEADERS = [(b"content-type", b"application/json")]


def auth_required_of(scope: Any) -> bool | None:
    """The policy `EdgeGuard` set for this request; None when it didn't run."""
    value = scope.get(AUTH_REQUIRED)
    return value if isinstance(value, bool) else None


def is_loopback_host(host: str) -> bool:
    """`localhost`, `*.localhost` (RFC 6761) or a loopback IP, with or without brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(authority: str) -> str:
    """The host of a `Host` header value (`name`, `name:port`, `[v6]:port`)."""
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    name, _, port = authority.rpartition(":")
    return name if name and port.isdigit() else authority


def _origin_is_loopback(origin: str) -> bool:
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return False  # includes "null" (sandboxed frames, file: pages)
    return is_loopback_host(_host_of(rest.split("/", 1)[0]))


def auth_required_for(server: ServerSettings, scope: Scope) -> bool:
    """This connection's auth policy: `GATEWAY_AUTH` when set; else required unless both
    `GATEWAY_HOST` and the local address the connection arrived on are loopback (a server
    started as `uvicorn --host 0.0.0.0`, which `GATEWAY_HOST` doesn't see, still requires keys
    from every other address)."""
    if server.auth is not None:
        return server.auth == "required"
    if not server.loopback_only:
        return True
    local: Any = scope.get("server")
    if not local:
        return True
    host, port = local[0], local[1]
    if port is None:  # a Unix socket: reachable only on this machine
        return False
    return not is_loopback_host(str(host))


class EdgeGuard:
    def __init__(self, app: ASGIApp, server: ServerSettings) -> None:
        self._app = app
        self._server = server
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        server = self._server
        headers = cast("list[tuple[bytes, bytes]]", scope["headers"])
        if HEAD_CHECKED not in scope and _head_too_large(server, scope, headers):
            message = (
                f"request headers exceed {server.max_header_count} fields or "
                f"{server.max_header_bytes} bytes"
            )
            await _refuse(send, 431, "headers_too_large", message)
            return
        required = auth_required_for(server, scope)
        scope[AUTH_REQUIRED] = required  # type: ignore[literal-required]
        if not required:
            refusal = _cross_site(headers)
            if refusal is not None:
                await _refuse(send, 403, "forbidden", refusal)
                return
        if self._in_flight >= server.max_concurrent_requests:
            await _refuse(send, 503, "overloaded", "too many requests in progress; retry shortly")
            return
        self._in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_flight -= 1


def _head_too_large(
    server: ServerSettings, scope: Scope, headers: list[tuple[bytes, bytes]]
) -> bool:
    """Under a server other than `gateway.server_protocol`'s, which bounds heads as they arrive."""
    if len(headers) > server.max_header_count:
        return True
    size = len(scope.get("raw_path") or b"") + sum(len(n) + len(v) for n, v in headers)
    return size > server.max_header_bytes


def _cross_site(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why a request to a gateway without auth is refused, or None when it is local."""
    host = origin = None
    for name, value in headers:
        if name == b"host" and host is None:
            host = value.decode("latin-1")
        elif name == b"origin" and origin is None:
            origin = value.decode("latin-1")
    if host is None or not is_loopback_host(_host_of(host)):
        return "with auth off the gateway only answers requests addressed to a loopback Host"
    if origin is not None and not _origin_is_loopback(origin):
        return "with auth off the gateway refuses requests from other origins"
    return None


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = error_body(status, message, code)
    start = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if status == 503:
        start.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body, "more_body": False})
