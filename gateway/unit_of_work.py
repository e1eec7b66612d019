"""The end-of-request unit of work: the writes one request's owners (the ledger sink, the
limiter) make as it ends, sent together as one pipelined write: one round trip per store.

Names no wire protocol: a store is anything `Pipelined` and the implementation is the RESP
client's `Batch`. Not a transaction: each owner judges its own reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.resp.batch import Batch


class Pipelined(Protocol):
    """A store that takes several commands in one write and returns their replies in order."""

    async def pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]: ...


class UnitOfWork(Protocol):
    """What owners add their end-of-request writes to; the request sends it once.

    Every write added must be safe to run twice: when a store's connection drops before the
    replies arrive, the writes may or may not have run, so they are sent once more. Each
    owner's `on_reply` sees its reply (an error as a value); what one raises, `send` raises
    once every owner has seen its reply.
    """

    def add(
        self, store: Pipelined, command: tuple[Any, ...], on_reply: Callable[[Any], None]
    ) -> None: ...

    async def send(self) -> None: ...


# A new, empty unit of work per request: the RESP client's batch (no wrapper, no extra call).
new_unit_of_work: Callable[[], UnitOfWork] = Batch
