"""A lean pipelined Redis client for the request path: RESP over a few multiplexed connections.

Not a general client: no blocking commands, pub/sub or cluster; background users keep redis-py.
Built to fail fast: connect and reply timeouts of ~1 s (`Address`), and for FAIL_FAST_S after a
failed connect or a reply timeout every command fails at once instead of waiting again. After a
failover the old primary's -READONLY (or -MASTERDOWN, -LOADING) makes the client reconnect.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import hiredis

from gateway.resp_address import CONNECT_TIMEOUT_S, REPLY_TIMEOUT_S, Address

__all__ = [
    "CONNECT_TIMEOUT_S",
    "REPLY_TIMEOUT_S",
    "Address",
    "Batch",
    "ConnectionFailed",
    "FailingFast",
    "ReplyError",
    "ReplyTimeout",
    "RespClient",
    "RespError",
    "Script",
]

log = logging.getLogger("gateway.resp")

Arg = bytes | str | int | float
Command = tuple[Arg, ...]

CONNECTIONS = 2  # per client (one per worker); replies are multiplexed, so a few are plenty
FAIL_FAST_S = 1.0  # after a failed connect or a reply timeout, commands fail at once this long
_RECONNECT = ("READONLY", "MASTERDOWN", "LOADING")  # this server can't serve us: find the primary

_pack = cast(Callable[[Command], bytes], hiredis.pack_command)  # its stub says a 1-tuple


class RespError(Exception):
    """A command sent through `RespClient` failed. The tree:

    RespError
     ├── ReplyError         Redis answered with an error reply; the connection is fine
     └── ConnectionFailed   no connection, or it dropped: every command waiting on it fails;
          ├── ReplyTimeout  no reply within the timeout (the connection is dropped too)
          └── FailingFast   not tried: Redis failed moments ago (FAIL_FAST_S)
    """


class ReplyError(RespError):
    @property
    def no_script(self) -> bool:
        return str(self).startswith("NOSCRIPT")

    @property
    def reconnect(self) -> bool:
        """This server can't run it (a demoted primary, a replica loading): it did nothing, and
        another connection, opened anew, may reach one that can."""
        return str(self).startswith(_RECONNECT)


class ConnectionFailed(RespError):
    pass


class ReplyTimeout(ConnectionFailed):
    pass


class FailingFast(ConnectionFailed):
    pass


class _Connection(asyncio.Protocol):
    """One socket: requests are written in order, so their replies come back in that order.

    Each waiter is (future, replies expected or 0 for one unwrapped reply, deadline). A waiter
    whose caller was cancelled still takes its replies, which are dropped. An idle connection
    writes a command at once; while replies are due, commands join one write on the loop's next
    turn (`_flush`), so a burst from many concurrent requests costs one syscall, not one each.
    """

    def __init__(
        self, address: Address, timeout_s: float, on_timeout: Callable[[], None] | None = None
    ) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._retiring = False  # no new commands; closed once the replies due have come
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(replyError=ReplyError)
        self._waiting: deque[tuple[asyncio.Future[Any], int, float]] = deque()
        self._partial: list[Any] = []
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._lost = False
        self._pending: list[bytes] = []  # not yet written; when not empty a `_flush` is scheduled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and self._address.keepalive and self._address.path is None:
            # A peer gone without a FIN (a dead host, a dropped NAT entry) is found by the OS.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def ready(self) -> bool:
        """Open for commands; closing counts as lost even before `connection_lost` runs."""
        transport = self._transport
        return (
            not self._lost
            and not self._retiring
            and transport is not None
            and not transport.is_closing()
        )

    def retire(self) -> None:
        """Take no new commands; close once the replies already due have arrived."""
        self._retiring = True
        if not self._waiting:
            self._drop(ConnectionFailed, f"the connection to Redis at {self._address} was retired")

    def busy(self) -> bool:
        """Replies are due: a command sent now joins the next write instead of its own."""
        return bool(self._waiting)

    def send(self, data: bytes, count: int) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        if not self.ready():  # lost between being opened and used: fail now, not at the timeout
            future.set_exception(
                ConnectionFailed(f"the connection to Redis at {self._address} closed")
            )
            return future
        waiting = self._waiting
        if not waiting:  # idle: nothing to wait behind
            cast(asyncio.Transport, self._transport).write(data)
        else:
            if not self._pending:
                self._loop.call_soon(self._flush)
            self._pending.append(data)  # in the waiters' order, so replies match
        waiting.append((future, count, time.monotonic() + self._timeout_s))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout_s, self._watch)
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and self.ready():  # else `_drop` has failed, or will fail, their waiters
            cast(asyncio.Transport, self._transport).write(b"".join(pending))

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        try:
            reply = reader.gets()
            while reply is not False:
                future, count, _ = waiting[0]
                if count:
                    self._partial.append(reply)
                    if len(self._partial) < count:
                        reply = reader.gets()
                        continue
                    reply, self._partial = self._partial, []
                waiting.popleft()
                if isinstance(reply, ReplyError) and reply.reconnect:
                    self._retiring = True
                if not future.done():  # done: its caller was cancelled
                    future.set_result(reply)
                reply = reader.gets()
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self._drop(ConnectionFailed, f"Redis at {self._address} broke the protocol: {exc}")
            return
        if self._retiring and not waiting:
            self.retire()

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f": {exc}" if exc is not None else ""
        self._drop(ConnectionFailed, f"connection to Redis at {self._address} lost{detail}")

    def _watch(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        left = self._waiting[0][2] - time.monotonic()
        if left > 0:
            self._watchdog = self._loop.call_later(left, self._watch)
            return
        message = f"Redis at {self._address} did not answer within {self._timeout_s:g} s"
        self._drop(ReplyTimeout, message)
        if self._on_timeout is not None:
            self._on_timeout()

    def _drop(self, error: type[ConnectionFailed], message: str) -> None:
        """Fail every waiter and close: Redis answers in order, so nothing behind can recover."""
        self._lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future = self._waiting.popleft()[0]
            if not future.done():
                future.set_exception(error(message))
        self._partial = []
        self._pending = []
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._drop(ConnectionFailed, "the Redis client was closed")


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
        self._slots: list[_Connection | None] = [None] * connections
        self._opening: list[asyncio.Task[_Connection] | None] = [None] * connections
        self._next = 0
        self._last: _Connection | None = None  # busy, it takes new commands: see `_request`
        self._scripts: dict[Arg, str] = {}  # sha -> source: loaded on connect, NOSCRIPT fallback

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RespClient:
        return cls(Address.from_url(url), **options)

    def script(self, source: str) -> Script:
        script = Script(self, source)
        self._scripts[script.sha] = source
        return script

    async def execute(self, *args: Arg) -> Any:
        """One command's reply; an error reply is raised as `ReplyError`."""
        reply = await self._request(_pack(args), 0)
        if isinstance(reply, ReplyError):
            if reply.reconnect:
                self._retire_all()
                reply = await self._request(_pack(args), 0)
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
        data = b"".join([_pack(command) for command in commands])
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

    def _opened(self, n: int, opening: asyncio.Task[_Connection]) -> None:
        self._opening[n] = None
        if not opening.cancelled() and opening.exception() is None:
            self._slots[n] = opening.result()

    async def _open(self) -> _Connection:
        try:
            return await self._connect()
        except ConnectionFailed as exc:
            self._failed(str(exc))
            raise

    async def _connect(self) -> _Connection:
        address, loop = self.address, asyncio.get_running_loop()
        timeout_s = self._connect_timeout_s

        def connection() -> _Connection:
            return _Connection(address, self._timeout_s, self._timed_out)

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
            data = b"".join([_pack(command) for command in greeting])
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


class Script:
    """A Lua script called by EVALSHA with its SHA computed here; on NOSCRIPT (a restarted or
    flushed Redis) the client sends it once by EVAL, which also loads it again."""

    def __init__(self, client: RespClient, source: str) -> None:
        self._client = client
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        return await self._client.execute(*self.command(keys, args))


class Batch:
    """Commands from several owners sent together: one write and one round trip per client.

    Each owner judges its own reply in `on_reply` (an error arrives as a `RespError` value);
    what an `on_reply` raises is raised by `send`, once every owner has seen its reply.

    Every command added must be safe to run twice (the settle script is idempotent per hold,
    the ledger writer drops a repeated event): when the connection drops before the replies
    arrive, Redis may or may not have run them, so the batch is sent once more.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[tuple[RespClient, Command, Callable[[Any], None]]] = []

    def add(self, client: RespClient, command: Command, on_reply: Callable[[Any], None]) -> None:
        self._items.append((client, command, on_reply))

    async def send(self) -> None:
        items = self._items
        if not items:
            return
        first = items[0][0]
        if all(client is first for client, _, _ in items):
            replies = await _replies(first, [command for _, command, _ in items])
        else:
            replies = [None] * len(items)
            groups: dict[RespClient, list[int]] = {}
            for n, (client, _, _) in enumerate(items):
                groups.setdefault(client, []).append(n)
            sent = [_replies(client, [items[n][1] for n in ns]) for client, ns in groups.items()]
            for ns, got in zip(groups.values(), await asyncio.gather(*sent), strict=True):
                for n, reply in zip(ns, got, strict=True):
                    replies[n] = reply
        raised: Exception | None = None
        for (_, _, on_reply), reply in zip(items, replies, strict=True):
            try:
                on_reply(reply)
            except Exception as exc:  # raised below, once the other owners have seen their replies
                if raised is not None:
                    log.error("another reply handler of the batch failed too", exc_info=exc)
                raised = raised or exc
        if raised is not None:
            raise raised


async def _replies(client: RespClient, commands: list[Command]) -> list[Any]:
    try:
        replies = await client.pipeline(commands)
    except (ReplyTimeout, FailingFast) as exc:  # Redis is stalled or down: don't wait again
        return [exc] * len(commands)
    except ConnectionFailed:  # dropped: run or not, unknown; every command is idempotent
        try:
            replies = await client.pipeline(commands)
        except RespError as exc:  # no connection: every command sent to it failed alike
            return [exc] * len(commands)
    again = [n for n, got in enumerate(replies) if isinstance(got, ReplyError) and got.reconnect]
    if again:  # refused by a demoted primary: nothing ran; once more on new connections
        try:
            redone = await client.pipeline([commands[n] for n in again])
        except RespError as exc:
            redone = [exc] * len(again)
        for n, reply in zip(again, redone, strict=True):
            replies[n] = reply
    return replies
