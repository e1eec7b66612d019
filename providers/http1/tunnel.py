"""An https connection through an http proxy: `CONNECT host:port`, then TLS inside the tunnel.

Only the proxy's answer to CONNECT is read here; the connection then belongs to the pool.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from providers.http1.errors import ConnectFailed

if TYPE_CHECKING:
    from providers.http1.connection import Connection
    from providers.http1.pool import Origin
    from providers.http1.proxy import Proxy

MAX_PROXY_HEAD = 16 * 1024


class _ConnectReply(asyncio.Protocol):
    """Collects the proxy's reply head to CONNECT; nothing may follow it before TLS starts."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if self.done.done():
            return
        if end >= 0:
            if end + 4 != len(self.head):
                self.done.set_exception(ConnectFailed("the proxy sent data after its reply"))
            else:
                self.done.set_result(bytes(self.head[:end]))
        elif len(self.head) > MAX_PROXY_HEAD:
            self.done.set_exception(ConnectFailed("the proxy's reply head is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectFailed("the proxy closed the connection"))


async def open_tunnel(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    conn: Connection,
    origin: Origin,
    proxy: Proxy,
) -> None:
    """Connect `conn` to `origin` over TLS through `proxy`, on the already connected `sock`."""
    assert origin.ssl is not None
    transport, reply = await loop.create_connection(_ConnectReply, sock=sock)
    try:
        authority = f"[{origin.host}]" if ":" in origin.host else origin.host
        lines = [f"CONNECT {authority}:{origin.port} HTTP/1.1", f"Host: {authority}:{origin.port}"]
        if proxy.authorization is not None:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await reply.done
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
            raise ConnectFailed(f"the proxy refused the tunnel: {status_line[:200]!r}")
        # TLS inside the tunnel speaks straight to `conn` (start_tls doesn't call its
        # connection_made: done below with the TLS transport).
        tls = await loop.start_tls(transport, conn, origin.ssl, server_hostname=origin.host)
    except BaseException:
        transport.abort()
        raise
    if tls is None:
        raise ConnectFailed("TLS inside the proxy tunnel could not start")
    conn.connection_made(tls)
