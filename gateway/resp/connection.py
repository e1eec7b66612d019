"""One RESP socket of the lean Redis client (`gateway.resp`) and the errors its commands end in.

Writes requests in order and hands each waiter its replies; knows nothing of pools or scripts.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis

from gateway.resp.address import Address

_RECONNECT = ("READONLY", "MASTERDOWN", "LOADING")  # this server can't serve us: find the primary


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


class Connection(asyncio.Protocol):
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
