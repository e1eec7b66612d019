"""The request path's `Commands` over redis-py, for Redis Cluster (MOVED/ASK, slot maps) and
Sentinel (the current primary, failover) deployments; one Redis keeps the lean `RespClient`.

Converts redis-py's errors into the `RespError` tree at this one seam and fails fast for a
moment after a connection failure, as `RespClient` does. Not used for background work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import exceptions as rx
from redis.asyncio import Redis, RedisCluster

from gateway.resp import FAIL_FAST_S, Arg, Command, Script
from gateway.resp.connection import (
    ConnectionFailed,
    FailingFast,
    ReplyError,
    ReplyTimeout,
    RespError,
)

# Errors that mean "not now, nothing ran" rather than "this command is wrong".
_UNAVAILABLE = (
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.ReadOnlyError,
    rx.BusyLoadingError,
    rx.SlotNotCoveredError,
    rx.RedisClusterUnreachableError,
)


CONNECTIONS = 64  # commands in flight at once (per node); more wait for one to finish


class RedisPyCommands:
    """`Commands` over a redis-py `RedisCluster`, or a `Redis` from `Sentinel.master_for`.

    redis-py holds a connection per command in flight, and its cluster client refuses one past
    `max_connections` instead of waiting: commands past `connections` wait here instead."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        connections: int = CONNECTIONS,
        fail_fast_s: float = FAIL_FAST_S,
    ) -> None:
        self.client = client
        self._slots = asyncio.Semaphore(connections)
        self._fail_fast_s = fail_fast_s
        self._down_until = 0.0
        self._down_reason = ""
        self._scripts: dict[Arg, str] = {}  # sha -> source, for NOSCRIPT

    def script(self, source: str) -> Script:
        script = Script(self, source)
        self._scripts[script.sha] = source
        return script

    async def execute(self, *args: Arg) -> Any:
        self._check_down()
        async with self._slots:
            return await self._execute(*args)

    async def _execute(self, *args: Arg) -> Any:
        with self._errors():
            try:
                return await self.client.execute_command(*args)
            except rx.NoScriptError:
                if args[0] != "EVALSHA" or args[1] not in self._scripts:
                    raise
                return await self.client.execute_command("EVAL", self._scripts[args[1]], *args[2:])

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Error replies come back as `ReplyError` values in their place, as with `RespClient`.
        A cluster pipeline is split per node by redis-py and sent to each at once."""
        if not commands:
            return []
        self._check_down()
        async with self._slots:
            return await self._pipeline(commands)

    async def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        for n, reply in enumerate(replies):
            if isinstance(reply, rx.NoScriptError):
                try:
                    replies[n] = await self._execute(*commands[n])
                except RespError as exc:
                    replies[n] = exc
            elif isinstance(reply, _UNAVAILABLE):
                replies[n] = ConnectionFailed(str(reply))
            elif isinstance(reply, rx.ResponseError | rx.RedisClusterException):
                replies[n] = ReplyError(str(reply))
            elif isinstance(reply, rx.RedisError):
                replies[n] = ConnectionFailed(str(reply))
        return replies

    def connected(self) -> bool:
        """No command failed lately (redis-py keeps its own connections; a lease admits nothing
        while this is False, as with the lean client)."""
        return not (self._down_until and time.monotonic() < self._down_until)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _check_down(self) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            raise FailingFast(self._down_reason)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:  # nothing ran: the cluster or the primary is away
            self._failed(f"Redis is unavailable: {exc}")
            raise ConnectionFailed(f"Redis is unavailable: {exc}") from exc
        except (rx.ResponseError, rx.RedisClusterException) as exc:  # refused; connection fine
            raise ReplyError(str(exc)) from exc
        except (TimeoutError, rx.TimeoutError) as exc:
            self._failed(f"Redis did not answer in time: {exc}")
            raise ReplyTimeout(str(exc)) from exc
        except (rx.RedisError, OSError) as exc:  # no connection, no primary, cluster down
            self._failed(f"Redis failed: {exc!r}")
            raise ConnectionFailed(f"Redis failed: {exc!r}") from exc

    def _failed(self, reason: str) -> None:
        self._down_until = time.monotonic() + self._fail_fast_s
        self._down_reason = f"{reason} (failing fast for {self._fail_fast_s:g} s)"
