"""The lean RESP client itself: commands multiplexed over a few connections, one reply each.

Not a general client: no blocking commands, pub/sub or cluster; background users keep redis-py.
Built to fail fast: connect and reply timeouts of ~1 s (`Address`), and for FAIL_FAST_S after a
failed connect or a reply timeout every command fails at once instead of waiting again. After a
failover the old primary's -READONLY (or -MASTERDOWN, -LOADING) makes the client reconnect.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from gateway.resp.address import Address
from gateway.resp.command import Arg, Command, pack
from gateway.resp.connection import Connection, ConnectionFailed, FailingFast, ReplyError, RespError
from gateway.resp.script import Script

CONNECTIONS = 2  # per client (one per worker); replies are multiplexed, so a few are plenty
FAIL_FAST_S = 1.0  # after a failed connect or a reply timeout, commands fail at once this long


class Commands(Protocol):
    """What the request path sends Redis commands through: `RespClient` for one Redis, or
    `gateway.resp_redispy.RedisPyCommands` (redis-py) for a Cluster or a Sentinel deployment.
    Errors are the `RespError` tree either way."""

    def script(self, source: str) -> Script: ...

    async def execute(self, *args: Arg) -> Any: ...

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]: ...

    def connected(self) -> bool: ...

    async def aclose(self) -> None: ...


class RespClient:
    """Commands spread round-robin over a few connections, each opened on first use and again
    after it is lost; while the last one used is waiting for replies, commands stay on it, so a
    burst shares one write. A command's reply is awaited without a pool or a per-call timer.

    A new connection sends AUTH, SELECT and SCRIPT LOAD of every script first, so EVALSHA
    finds its script after a restart or a failover. Nothing is retried here, except a command
    refused with -READONLY/-MASTERDOWN/-LOADING (it did nothing): once, on new connections.
    """

    def __init__(
        self,
        address: Address,
        *,
        connections: int = CONNECTIONS,
        timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
        fail_fast_s: float = FAIL_FAST_S,
    ) -> None:
        self.address = address
        self._timeout_s = address.reply_timeout_s if timeout_s is None else timeout_s
        self._connect_timeout_s = (
            address.connect_timeout_s if connect_timeout_s is None else connect_timeout_s
        )
        self._fail_fast_s = fail_fast_s
        self._down_until = 0.0  # monotonic: until then commands fail at once
        self._down_reason = ""
        self._slots: list[Connection | None] = [None] * connections
        self._opening: list[asyncio.Task[Connection] | None] = [None] * connections
        self._next = 0
        self._last: Connection | None = None  # busy, it takes new commands: see `_request`
        self._scripts: dict[Arg, str] = {}  # sha -> source: loaded on connect, NOSCRIPT fallback

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RespClient:
        return cls(Address.from_url(url), **options)

    def script(self, source: str) -> Script:
        script = Script(self, source)
        self._scripts[script.sha] = source
        return script

    def connected(self) -> bool:
        """Some connection is open and no command failed lately. No I/O: a killed Redis's
        connections are lost as its sockets close, a silent one at its next reply timeout."""
        if self._down_until and time.monotonic() < self._down_until:
            return False
        return any(connection is not None and connection.ready() for connection in self._slots)

    async def execute(self, *args: Arg) -> Any:
        """One command's reply; an error reply is raised as `ReplyError`."""
        reply = await self._request(pack(args), 0)
        if isinstance(reply, ReplyError):
            if reply.reconnect:
                self._retire_all()
                reply = await self._request(pack(args), 0)
            if isinstance(reply, ReplyError):
                if reply.no_script and args[0] == "EVALSHA" and args[1] in self._scripts:
                    return await self.execute("EVAL", self._scripts[args[1]], *args[2:])
                raise reply
        return reply

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one write and one round trip; error replies are returned as
        `ReplyError` values in their place, not raised.

        A command whose script Redis had lost (NOSCRIPT: flushed while connected) is sent
        again by EVAL after the others: it runs after them. Batches mix only independent
        commands, so their order doesn't matter."""
        if not commands:
            return []
        data = b"".join([pack(command) for command in commands])
        replies: list[Any] = await self._request(data, len(commands))
        for n, reply in enumerate(replies):
            if isinstance(reply, ReplyError):
                if reply.reconnect:
                    self._retire_all()
                if reply.no_script:
                    command = commands[n]
                    if command[0] == "EVALSHA" and command[1] in self._scripts:
                        try:
                            replies[n] = await self.execute(*command)  # falls back to EVAL
                        except RespError as exc:
                            replies[n] = exc
        return replies

    def _request(self, data: bytes, count: int) -> Awaitable[Any]:
        if self._down_until and time.monotonic() < self._down_until:
            future = asyncio.get_running_loop().create_future()
            future.set_exception(FailingFast(self._down_reason))
            return future
        connection = self._last
        if connection is None or not connection.busy() or not connection.ready():
            slots = self._slots
            n = self._next = (self._next + 1) % len(slots)
            connection = slots[n]
            if connection is None or not connection.ready():
                return self._request_when_open(n, data, count)
            self._last = connection
        return connection.send(data, count)

    def _failed(self, reason: str) -> None:
        """Redis just failed us: fail fast for a while instead of waiting on it again."""
        self._down_until = time.monotonic() + self._fail_fast_s
        self._down_reason = f"{reason} (failing fast for {self._fail_fast_s:g} s)"

    def _timed_out(self) -> None:
        self._failed(f"Redis at {self.address} did not answer within {self._timeout_s:g} s")

    def _retire_all(self) -> None:
        for connection in self._slots:
            if connection is not None:
                connection.retire()
        self._last = None

    async def _request_when_open(self, n: int, data: bytes, count: int) -> Any:
        opening = self._opening[n]
        if opening is None:
            opening = self._opening[n] = asyncio.create_task(self._open())
            opening.add_done_callback(functools.partial(self._opened, n))
        connection = await asyncio.shield(opening)  # one caller's cancellation can't abort it
        return await connection.send(data, count)

    def _opened(self, n: int, opening: asyncio.Task[Connection]) -> None:
        self._opening[n] = None
        if not opening.cancelled() and opening.exception() is None:
            self._slots[n] = opening.result()

    async def _open(self) -> Connection:
        try:
            return await self._connect()
        except ConnectionFailed as exc:
            self._failed(str(exc))
            raise

    async def _connect(self) -> Connection:
        address, loop = self.address, asyncio.get_running_loop()
        timeout_s = self._connect_timeout_s

        def connection() -> Connection:
            return Connection(address, self._timeout_s, self._timed_out)

        try:
            async with asyncio.timeout(timeout_s):
                if address.path is not None:
                    _, opened = await loop.create_unix_connection(connection, address.path)
                else:
                    _, opened = await loop.create_connection(
                        connection, address.host, address.port, ssl=address.tls
                    )
        except (OSError, TimeoutError) as exc:
            raise ConnectionFailed(f"cannot connect to Redis at {address}: {exc!r}") from exc
        greeting: list[Command] = [*address.greeting()]
        greeting += [("SCRIPT", "LOAD", source) for source in self._scripts.values()]
        if greeting:  # a lost or late reply fails (and drops) the connection by itself
            data = b"".join([pack(command) for command in greeting])
            try:
                replies = await opened.send(data, len(greeting))
            except asyncio.CancelledError:
                opened.close()
                raise
            refused = [reply for reply in replies if isinstance(reply, ReplyError)]
            if refused:
                opened.close()
                why = f"refused the login (or a script load): {refused[0]}"
                raise ConnectionFailed(f"Redis at {address} {why}")
        return opened

    async def aclose(self) -> None:
        for opening in self._opening:
            if opening is not None:
                opening.cancel()
        for connection in self._slots:
            if connection is not None:
                connection.close()
        self._slots = [None] * len(self._slots)
        self._last = None
