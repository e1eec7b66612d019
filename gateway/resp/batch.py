"""Commands from several owners sent together: one write and one round trip per client.

The RESP implementation of the end-of-request unit of work (`gateway.unit_of_work`); not a
transaction (no MULTI/EXEC).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.resp.command import Command
from gateway.resp.connection import (
    ConnectionFailed,
    FailingFast,
    ReplyError,
    ReplyTimeout,
    RespError,
)

if TYPE_CHECKING:
    from gateway.unit_of_work import Pipelined

log = logging.getLogger("gateway.resp")


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
        self._items: list[tuple[Pipelined, Command, Callable[[Any], None]]] = []

    def add(self, client: Pipelined, command: Command, on_reply: Callable[[Any], None]) -> None:
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
            groups: dict[Pipelined, list[int]] = {}
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


async def _replies(client: Pipelined, commands: list[Command]) -> list[Any]:
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
