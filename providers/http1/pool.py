"""The connection pool: idle keep-alive connections per origin, reused last-in first-out, a cap
on all open connections and one per origin. Opens connections (happy eyeballs over the resolved
addresses, through a proxy when the origin has one); knows nothing of requests.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohappyeyeballs

from providers.http1.connection import Connection
from providers.http1.errors import ConnectFailed, ConnectionClosed, Timeout
from providers.http1.limits import Limits
from providers.http1.proxy import Proxy
from providers.http1.tunnel import open_tunnel

HAPPY_EYEBALLS_DELAY_S = 0.25  # RFC 8305's connection attempt delay
AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]
Resolver = Callable[[str, int], Awaitable[list[AddrInfo]]]


class Origin:
    """Scheme, host and port: connections to one are interchangeable."""

    __slots__ = ("host", "idle", "keepalive_s", "open", "port", "proxy", "ssl", "waiters")

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        keepalive_s: float,
        proxy: Proxy | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.proxy = proxy
        self.keepalive_s = keepalive_s
        self.idle: list[Connection] = []  # the most recently used last
        self.open = 0  # connections holding a slot of this origin
        self.waiters: deque[asyncio.Future[None]] = deque()  # for a slot of this origin

    def __repr__(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"


async def system_resolver(host: str, port: int) -> list[AddrInfo]:
    loop = asyncio.get_running_loop()
    return cast(list[AddrInfo], await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class Pool:
    def __init__(self, limits: Limits, resolver: Resolver = system_resolver) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections
        self.closed = False
        self._resolve = resolver
        self._open = 0  # connections holding a slot: connecting, busy or idle
        self._origins: dict[tuple[str, int, bool], Origin] = {}
        self._all: set[Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def open_connections(self) -> int:
        return self._open

    def origin(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        proxy: Proxy | None = None,
    ) -> Origin:
        key = (host, port, ssl_context is not None)
        found = self._origins.get(key)
        if found is None:
            found = Origin(host, port, ssl_context, self.limits.keepalive_s, proxy)
            self._origins[key] = found
        return found

    def take_idle(self, origin: Origin) -> Connection | None:
        """The most recently used idle connection, if one is still fresh."""
        idle = origin.idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if not conn.usable or time.monotonic() - conn.idle_since > origin.keepalive_s:
                conn.close()
                continue
            return conn
        return None

    async def acquire(
        self, origin: Origin, connect_s: float, deadline: float, wait_s: float, fresh: bool = False
    ) -> Connection:
        """An idle connection (unless `fresh`) or a new one; waits for a slot until `deadline`
        (loop time)."""
        while True:
            if not fresh:
                conn = self.take_idle(origin)
                if conn is not None:
                    return conn
            if self.closed:
                raise ConnectFailed("the HTTP client is closed")
            if origin.open >= self.limits.max_per_origin and not self._evict_idle(origin):
                await self._wait_for_slot(origin.waiters, deadline, wait_s)
                continue
            if self._open < self.max_connections or self._evict_idle():
                return await self._connect(origin, connect_s)
            await self._wait_for_slot(self._waiters, deadline, wait_s)

    # -- what connections report

    def release(self, conn: Connection) -> None:
        """A connection done with its exchange and fit for another."""
        if self.closed:
            conn.close()
            return
        now = time.monotonic()
        origin = conn.origin
        idle = origin.idle
        if idle and now - idle[0].idle_since > origin.keepalive_s:
            idle[0].close()  # trim the stalest as traffic goes on (LIFO never reaches them)
        conn.idle = True
        conn.idle_since = now
        idle.append(conn)
        if origin.waiters:
            _wake_one(origin.waiters)
        if self._waiters:
            _wake_one(self._waiters)

    def discard(self, conn: Connection) -> None:
        """A connection closed (by either side): its slot is free."""
        origin = conn.origin
        if conn.idle:
            conn.idle = False
            origin.idle.remove(conn)
        self._all.discard(conn)
        if conn.counted:
            conn.counted = False
            self._open -= 1
            origin.open -= 1
            if origin.waiters:
                _wake_one(origin.waiters)
            if self._waiters:
                _wake_one(self._waiters)

    async def aclose(self) -> None:
        """Close every connection, idle or busy; waiting requests fail."""
        self.closed = True
        for conn in list(self._all):
            if conn.response is not None:
                conn.response.fail(ConnectionClosed("the HTTP client was closed"))
            conn.abort()
        for waiters in [self._waiters, *(o.waiters for o in self._origins.values())]:
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(ConnectFailed("the HTTP client was closed"))
        await asyncio.sleep(0)  # let the transports report their ends

    # -- internals

    async def _connect(self, origin: Origin, connect_s: float) -> Connection:
        conn = Connection(origin, self, self.limits.max_header_bytes)
        self._open += 1
        origin.open += 1
        proxy = origin.proxy
        host, port = (proxy.host, proxy.port) if proxy is not None else (origin.host, origin.port)
        where = f"{origin!r}" + (f" through the proxy {host}:{port}" if proxy else "")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                sock = await self._open_socket(host, port)
                if proxy is not None and origin.ssl is not None:
                    await open_tunnel(loop, sock, conn, origin, proxy)
                else:
                    await loop.create_connection(
                        lambda: conn,
                        sock=sock,
                        ssl=origin.ssl,
                        server_hostname=origin.host if origin.ssl else None,
                        ssl_handshake_timeout=connect_s if origin.ssl else None,
                    )
        except TimeoutError as exc:
            self.discard(conn)
            raise Timeout("connect", connect_s) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            self.discard(conn)
            raise ConnectFailed(f"cannot connect to {where}: {exc}") from exc
        except BaseException:
            self.discard(conn)
            raise
        if not conn.usable:  # hung up before we got to use it
            conn.abort()
            raise ConnectionClosed(f"{origin!r} closed a new connection at once")
        self._all.add(conn)
        return conn

    async def _open_socket(self, host: str, port: int) -> socket.socket:
        """A connected socket: the resolved addresses tried RFC 8305 style, a new attempt every
        HAPPY_EYEBALLS_DELAY_S while earlier ones are still pending."""
        infos = await self._resolve(host, port)
        if not infos:
            raise OSError(f"{host!r} resolved to no address")
        sock = await aiohappyeyeballs.start_connection(
            infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S, interleave=1
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    def _evict_idle(self, origin: Origin | None = None) -> bool:
        """Close the least recently used idle connection (of `origin`, else of any) to free its
        slot."""
        oldest: Connection | None = None
        for candidate in (origin,) if origin is not None else self._origins.values():
            if candidate.idle and (
                oldest is None or candidate.idle[0].idle_since < oldest.idle_since
            ):
                oldest = candidate.idle[0]
        if oldest is None:
            return False
        oldest.close()
        return True

    async def _wait_for_slot(
        self, waiters: deque[asyncio.Future[None]], deadline: float, wait_s: float
    ) -> None:
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except TimeoutError as exc:
            raise Timeout("pool", wait_s) from exc
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                _wake_one(waiters)  # pass on the wake-up this caller won't use
            raise


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
