"""The production ledger queue: a Redis Stream read by a consumer group of ledger writers.
emit() is one XADD over the lean `RespClient`; writers ack (XACK+XDEL) after commit over redis-py;
a dead writer's entries are claimed with XAUTOCLAIM once idle for `claim_idle_s`."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from redis.exceptions import RedisError, ResponseError

from gateway.errors import GatewayError
from gateway.ledger.codec import EVENT_VERSION, EventDecodeError, decode_event, encode_event
from gateway.ledger.events import GenerationEvent
from gateway.ledger.source import Entry
from gateway.redis_topology import BackgroundRedis
from gateway.resp import Command, Commands, RespError
from gateway.unit_of_work import UnitOfWork

log = logging.getLogger("gateway.ledger.stream")

GROUP = "ledger-writers"
EVENT_FIELD = b"e"
VERSION_FIELD = b"v"
DEPARTED_CONSUMER_IDLE_MS = 24 * 3600 * 1000  # consumers idle this long with nothing pending


class LedgerUnavailable(GatewayError):
    """The ledger queue refused the event: the answer is withheld rather than left unbilled."""

    client_status = 503
    code = "ledger_unavailable"


def stream_key(prefix: str) -> str:
    return f"{prefix}ledger:events"


def dead_letter_key(prefix: str) -> str:
    return f"{prefix}ledger:dead"


def consumer_name() -> str:
    """Unique per process: a restarted process is a new consumer; its old entries get claimed."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field(fields: dict[Any, Any], name: bytes) -> Any:
    return fields.get(name, fields.get(name.decode()))


def _entries_of_read(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """XREADGROUP's reply for one stream, in RESP2 (list) or RESP3 (dict) form."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [item for messages in reply.values() for item in messages[0]]
    return [item for _, messages in reply for item in messages]


class RedisStreamLedger:
    """Sink for the request path and source for the writer, over one stream and one group."""

    kind = "redis-stream"
    durable = True

    def __init__(
        self,
        redis: BackgroundRedis,
        prefix: str,
        *,
        claim_idle_s: float,
        resp: Commands,
        consumer: str | None = None,
    ) -> None:
        self._redis = redis
        self._resp = resp  # the request path's XADD
        self.key = stream_key(prefix)
        self.dead_key = dead_letter_key(prefix)
        self.consumer = consumer or consumer_name()
        self.claim_idle_s: float | None = claim_idle_s
        self._claim_idle_ms = max(int(claim_idle_s * 1000), 1)
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._group_ready = False
        self._reread_own = False  # a read failed: entries may be pending for us unseen

    async def emit(self, event: GenerationEvent) -> None:
        try:
            await self._resp.execute(*self._xadd(event))
        except RespError as exc:
            _not_queued(event, exc)

    def emit_into(self, work: UnitOfWork, event: GenerationEvent) -> None:
        work.add(self._resp, self._xadd(event), lambda reply: _queued(event, reply))

    def _xadd(self, event: GenerationEvent) -> Command:
        data = encode_event(event)
        return ("XADD", self.key, "*", VERSION_FIELD, EVENT_VERSION, EVENT_FIELD, data)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def read(self, count: int, wait_s: float) -> list[Entry]:
        await self._ensure_group()
        try:
            raw = await self._claim(count)
            if not raw and self._reread_own:
                raw = await self._own_pending(count)
            if not raw:
                block = int(wait_s * 1000) if wait_s > 0 else None
                reply = await self._redis.xreadgroup(
                    GROUP, self.consumer, {self.key: ">"}, count=count, block=block
                )
                raw = _entries_of_read(reply)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                self._group_ready = False  # the stream was deleted: recreate it next time
            raise
        except (RedisError, OSError):
            # A read whose reply was lost (a dropped connection, a failover) may have been
            # delivered to us: read our own pending entries first next time, instead of leaving
            # them to XAUTOCLAIM after `claim_idle_s`.
            self._reread_own = True
            raise
        return await self._decode(raw)

    async def _own_pending(self, count: int) -> list[tuple[Any, dict[Any, Any]]]:
        """Entries delivered to this consumer and not acked (id 0: its history), once after a
        read failed; the ledger writer inserts each generation once, so re-reading is safe."""
        raw = _entries_of_read(
            await self._redis.xreadgroup(GROUP, self.consumer, {self.key: "0"}, count=count)
        )
        gone = [entry_id for entry_id, fields in raw if not fields]
        if gone:  # deleted while pending: nothing to write
            await self._redis.xack(self.key, GROUP, *gone)
        raw = [(entry_id, fields) for entry_id, fields in raw if fields]
        if not raw:
            self._reread_own = False
        return raw

    async def _claim(self, count: int) -> list[tuple[Any, dict[Any, Any]]]:
        """Take over entries another (probably dead) writer has held for too long."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        reply = await self._redis.xautoclaim(
            self.key, GROUP, self.consumer, self._claim_idle_ms, self._claim_cursor, count=count
        )
        cursor, claimed = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._claim_cursor = _text(cursor)
        if self._claim_cursor == "0-0":
            self._next_claim = now + self._claim_idle_ms / 2000
        if deleted:
            await self._redis.xack(self.key, GROUP, *deleted)
        if claimed:
            log.warning("ledger entries claimed from an idle writer", extra={"n": len(claimed)})
        return [(entry_id, fields) for entry_id, fields in claimed if fields is not None]

    async def _decode(self, raw: list[tuple[Any, dict[Any, Any]]]) -> list[Entry]:
        entries: list[Entry] = []
        for entry_id, fields in raw:
            try:
                data = _field(fields, EVENT_FIELD)
                if data is None:
                    raise EventDecodeError("entry has no event field")
                entries.append(Entry(_text(entry_id), decode_event(data)))
            except EventDecodeError as exc:
                await self._set_aside(_text(entry_id), fields, str(exc))
        return entries

    async def ack(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        ids = [entry.id for entry in entries]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, GROUP, *ids)
            pipe.xdel(self.key, *ids)
            await pipe.execute()

    async def recover(self) -> None:
        """Nothing to do: unacked entries stay pending and are claimed again (XAUTOCLAIM) once
        idle for `claim_idle_s`."""

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        fields = {VERSION_FIELD: EVENT_VERSION, EVENT_FIELD: encode_event(entry.event)}
        await self._set_aside(entry.id, fields, reason)

    async def _set_aside(self, entry_id: str, fields: dict[Any, Any], reason: str) -> None:
        """Copy to the dead stream, then ack. Two steps, not one MULTI: the two streams hash to
        different Redis Cluster slots. A crash between them leaves the entry pending, so it is
        claimed and set aside again: a second copy (same `entry` field), never a lost one."""
        log.error("ledger entry set aside", extra={"entry": entry_id, "reason": reason})
        await self._redis.xadd(self.dead_key, {**fields, b"reason": reason, b"entry": entry_id})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, GROUP, entry_id)
            pipe.xdel(self.key, entry_id)
            await pipe.execute()

    async def depth(self) -> int:
        length: int = await self._redis.xlen(self.key)
        return length

    async def undecodable(self) -> int:
        """Entries set aside in Redis because this version could not decode them."""
        length: int = await self._redis.xlen(self.dead_key)
        return length

    async def oldest_age_s(self) -> float | None:
        first = await self._redis.xrange(self.key, "-", "+", count=1)
        if not first or first[0][0] is None:
            return None
        millis = int(_text(first[0][0]).split("-", 1)[0])
        return max(time.time() - millis / 1000, 0.0)

    async def tidy(self) -> None:
        """Forget consumers (departed processes) that hold nothing and were idle for a day."""
        await self._ensure_group()
        for consumer in await self._redis.xinfo_consumers(self.key, GROUP):
            name = _text(consumer["name"])
            if (
                name != self.consumer
                and consumer["pending"] == 0
                and consumer["idle"] > DEPARTED_CONSUMER_IDLE_MS
            ):
                await self._redis.xgroup_delconsumer(self.key, GROUP, name)


def _queued(event: GenerationEvent, reply: Any) -> None:
    if isinstance(reply, RespError):
        _not_queued(event, reply)


def _not_queued(event: GenerationEvent, error: RespError) -> NoReturn:
    log.error("ledger event not queued", extra={"generation_id": event.id})
    raise LedgerUnavailable("the ledger is unavailable; try again") from error
