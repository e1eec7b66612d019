"""The connection pool: idle keep-alive connections per origin, reused last-in first-out, and a
cap on all open connections. Opens connections; knows nothing of requests.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque

from providers.http1.connection import Connection
from providers.http1.errors import ConnectFailed, ConnectionClosed, Timeout


class Origin:
    """Scheme, host and port: connections to one are interchangeable."""

    __slots__ = ("host", "idle", "port", "ssl")

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.idle: list[Connection] = []  # the most recently used last

    def __repr__(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"


class Pool:
    def __init__(self, max_connections: int, keepalive_s: float) -> None:
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self.closed = False
        self._open = 0  # connections holding a slot: connecting, busy or idle
        self._origins: dict[tuple[str, int, bool], Origin] = {}
        self._all: set[Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def open_connections(self) -> int:
        return self._open

    def origin(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> Origin:
        key = (host, port, ssl_context is not None)
        found = self._origins.get(key)
        if found is None:
            found = self._origins[key] = Origin(host, port, ssl_context)
        return found

    def take_idle(self, origin: Origin) -> Connection | None:
        """The most recently used idle connection, if one is still fresh."""
        idle = origin.idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if not conn.usable or time.monotonic() - conn.idle_since > self.keepalive_s:
                conn.close()
                continue
            return conn
        return None

    async def acquire(
        self, origin: Origin, connect_s: float, deadline: float, wait_s: float
    ) -> Connection:
        """An idle connection or a new one; waits for a slot until `deadline` (loop time)."""
        while True:
            conn = self.take_idle(origin)
            if conn is not None:
                return conn
            if self.closed:
                raise ConnectFailed("the HTTP client is closed")
            if self._open < self.max_connections or self._evict_idle():
                return await self._connect(origin, connect_s)
            await self._wait_for_slot(deadline, wait_s)

    # -- what connections report

    def release(self, conn: Connection) -> None:
        """A connection done with its exchange and fit for another."""
        if self.closed:
            conn.close()
            return
        now = time.monotonic()
        idle = conn.origin.idle
        if idle and now - idle[0].idle_since > self.keepalive_s:
            idle[0].close()  # trim the stalest as traffic goes on (LIFO never reaches them)
        conn.idle = True
        conn.idle_since = now
        idle.append(conn)
        if self._waiters:
            self._wake_one()

    def discard(self, conn: Connection) -> None:
        """A connection closed (by either side): its slot is free."""
        if conn.idle:
            conn.idle = False
            conn.origin.idle.remove(conn)
        self._all.discard(conn)
        if conn.counted:
            conn.counted = False
            self._open -= 1
            if self._waiters:
                self._wake_one()

    async def aclose(self) -> None:
        """Close every connection, idle or busy; waiting requests fail."""
        self.closed = True
        for conn in list(self._all):
            if conn.response is not None:
                conn.response.fail(ConnectionClosed("the HTTP client was closed"))
            conn.abort()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed("the HTTP client was closed"))
        await asyncio.sleep(0)  # let the transports report their ends

    # -- internals

    async def _connect(self, origin: Origin, connect_s: float) -> Connection:
        conn = Connection(origin, self)
        self._open += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                await loop.create_connection(
                    lambda: conn,
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl else None,
                    ssl_handshake_timeout=connect_s if origin.ssl else None,
                )
        except TimeoutError as exc:
            self.discard(conn)
            raise Timeout("connect", connect_s) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            self.discard(conn)
            raise ConnectFailed(f"cannot connect to {origin!r}: {exc}") from exc
        except BaseException:
            self.discard(conn)
            raise
        if not conn.usable:  # hung up before we got to use it
            conn.abort()
            raise ConnectionClosed(f"{origin!r} closed a new connection at once")
        self._all.add(conn)
        return conn

    def _evict_idle(self) -> bool:
        """Close the least recently used idle connection of any origin to free its slot."""
        oldest: Connection | None = None
        for origin in self._origins.values():
            if origin.idle and (oldest is None or origin.idle[0].idle_since < oldest.idle_since):
                oldest = origin.idle[0]
        if oldest is None:
            return False
        oldest.close()
        return True

    async def _wait_for_slot(self, deadline: float, wait_s: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except TimeoutError as exc:
            raise Timeout("pool", wait_s) from exc
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake_one()  # pass on the wake-up this caller won't use
            raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
