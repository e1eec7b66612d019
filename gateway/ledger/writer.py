"""The ledger writer: reads waiting events in batches, commits, then acks. Never drops, never
acks uncommitted: transient failures (a lost connection, a server shutting down, a timeout)
retry with backoff; any other failure is the rows' own: the batch is halved until the offending
rows stand alone, and those are set aside as dead letters (`gateway.ledger.dead_letters`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from redis.exceptions import RedisError
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    InternalError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)

from gateway.ledger.events import GenerationEvent
from gateway.ledger.metrics import WriterCounters
from gateway.ledger.rows import InvalidEvent, LedgerRows, rows_of
from gateway.ledger.source import Entry, LedgerSource
from gateway.ledger.store import LedgerStore
from providers.background import stop_task

log = logging.getLogger("gateway.ledger.writer")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
WRITE_TIMEOUT_S = 30.0  # a commit slower than this counts as failed (and is retried)
STOP_GRACE_S = 5.0  # beyond the drain timeout, before the task is cancelled
MAX_IDLE_WAIT_S = 1.0  # an idle writer looks up at least this often (so stop() is prompt)

# Whatever else a write raises (a constraint, a value out of range, an index row too large, an
# encoder refusing a string, a driver bug on one value) is blamed on the rows, bisected and
# dead-lettered: the batch is never retried forever. `gateway.ledger.postgres_batch` sorts
# Postgres' SQLSTATEs into these two families.
TRANSIENT_ERRORS = (OSError, TimeoutError, RedisError)
# The connection or the server, not the rows (a deadlock, a lock, "database is locked" too).
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError, InternalError)

Pair = tuple[Entry, LedgerRows]


class DeadLetterSink(Protocol):
    async def put(self, entry_id: str, event: GenerationEvent, reason: str) -> None:
        """Keep an event the database refused, for a human to see and replay."""


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same batch later can succeed; False when the rows are to blame."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, DBAPIError):
        return isinstance(exc, TRANSIENT_DATABASE_ERRORS)
    # Not a DBAPI error: a parameter SQLAlchemy could not bind (row-level), or pool/engine
    # trouble (transient).
    return isinstance(exc, SQLAlchemyError) and not isinstance(exc, StatementError)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"


class LedgerWriter:
    def __init__(
        self,
        source: LedgerSource,
        store: LedgerStore,
        *,
        batch_size: int,
        flush_interval_s: float,
        drain_timeout_s: float,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self._source = source
        self._store = store
        self._dead_letters = dead_letters  # None: the source keeps them (`dead_letter`)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._drain_timeout_s = drain_timeout_s
        self._stopping = asyncio.Event()
        self._deadline = float("inf")
        self._task: asyncio.Task[None] | None = None
        self._last_batch = 0.0  # monotonic start of the last batch
        self.counters = WriterCounters()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")
        self._task.add_done_callback(_report_exit)

    async def ended(self) -> None:
        """Return once the writer's task has ended: stopped, or died of an error."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def stop(self) -> None:
        """Drain what can be written within the drain timeout, then end the task."""
        if self._task is None:
            return
        self._deadline = time.monotonic() + self._drain_timeout_s
        self._stopping.set()
        # A task that died has had its error logged (`_report_exit`): stopping doesn't re-raise.
        await asyncio.wait({self._task}, timeout=self._drain_timeout_s + STOP_GRACE_S)
        if not self._task.done():
            await stop_task(self._task)
        if not self._source.durable:
            depth = await self._source.depth()
            if depth:
                log.error("ledger events lost at shutdown", extra={"events": depth})

    async def _run(self) -> None:
        delay = BACKOFF_MIN_S
        while not self._stopping.is_set():
            try:
                await self.step(min(self._flush_interval_s, MAX_IDLE_WAIT_S))
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("ledger queue unreachable", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            except Exception:
                # Unforeseen (a driver's internal error, a bug): a writer that stopped would stop
                # the whole ledger. Log, hand the step's entries back, and go on.
                log.exception("ledger writer step failed; retrying")
                with contextlib.suppress(RedisError, OSError):
                    await self._source.recover()
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            delay = BACKOFF_MIN_S
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            while time.monotonic() < self._deadline and await self.step(0):
                pass

    async def step(self, wait_s: float) -> bool:
        """One batch: read, commit, ack. False when there was nothing to do or it gave up."""
        batch = await self._source.read(self._batch_size, wait_s)
        if not batch:
            return False
        # Linger: a short batch waits out the rest of the flush interval for company, so a
        # trickle of events costs one transaction per interval instead of one per event.
        linger = self._last_batch + self._flush_interval_s - time.monotonic()
        if len(batch) < self._batch_size and linger > 0 and not self._stopping.is_set():
            await asyncio.sleep(linger)
            batch += await self._source.read(self._batch_size - len(batch), 0)
        self._last_batch = time.monotonic()
        pairs: list[Pair] = []
        for entry in batch:
            try:
                pairs.append((entry, rows_of(entry.event)))
            except InvalidEvent as exc:
                await self._set_aside(entry, f"InvalidEvent: {exc}")
        if not await self._write(pairs):
            return False
        return await self._ack([entry for entry, _ in pairs])

    def _giving_up(self) -> bool:
        # A durable source keeps what we leave; the in-process queue is retried to the deadline.
        return self._stopping.is_set() and (
            self._source.durable or time.monotonic() >= self._deadline
        )

    async def _write(self, pairs: Sequence[Pair]) -> bool:
        if not pairs:
            return True
        delay = BACKOFF_MIN_S
        while True:
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    inserted = await self._store.write([rows for _, rows in pairs])
            except Exception as exc:
                if not is_transient(exc):
                    return await self._isolate(pairs, exc)
                self.counters.write_errors_total += 1
                log.warning(
                    "ledger batch not committed; will retry",
                    extra={"events": len(pairs), "error": type(exc).__name__, "retry_s": delay},
                )
                if self._giving_up():
                    return False
                with contextlib.suppress(RedisError, OSError):
                    await self._source.keep([entry for entry, _ in pairs])
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.counters.batches_total += 1
            self.counters.written_total += inserted
            self.counters.replayed_total += len(pairs) - inserted
            self.counters.last_commit_at = datetime.now(UTC)
            return True

    async def _isolate(self, pairs: Sequence[Pair], exc: Exception) -> bool:
        """The database refused something in `pairs`: halve until the culprits stand alone."""
        log.warning(
            "ledger batch refused; isolating its rows",
            extra={"events": len(pairs), "error": _reason(exc)[:500]},
        )
        if len(pairs) == 1:
            return await self._set_aside(pairs[0][0], _reason(exc))
        half = len(pairs) // 2
        return await self._write(pairs[:half]) and await self._write(pairs[half:])

    async def _ack(self, entries: Sequence[Entry]) -> bool:
        delay = BACKOFF_MIN_S
        while True:
            try:
                await self._source.ack(entries)
                return True
            except (RedisError, OSError) as exc:
                # Committed but not acked: redelivery is harmless (inserts are idempotent).
                log.warning("ledger ack failed; will retry", extra={"error": type(exc).__name__})
                if self._giving_up():
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _set_aside(self, entry: Entry, reason: str) -> bool:
        """Keep the entry as a dead letter, then ack it. False when that could not be done (it
        stays in the queue and comes back)."""
        if self._dead_letters is None:
            try:
                await self._source.dead_letter(entry, reason)
            except (RedisError, OSError) as exc:
                # Left pending: it comes back once the queue answers again.
                log.warning("ledger dead letter failed", extra={"error": type(exc).__name__})
                return False
            self.counters.dead_letters_total += 1
            return True
        delay = BACKOFF_MIN_S
        while True:
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await self._dead_letters.put(entry.id, entry.event, reason)
                break
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("ledger dead letter not stored", extra={"error": type(exc).__name__})
                if self._giving_up():
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        log.error(
            "ledger event set aside as a dead letter",
            extra={"generation_id": entry.event.id, "entry": entry.id, "reason": reason[:500]},
        )
        self.counters.dead_letters_total += 1
        return await self._ack([entry])


def _report_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("ledger writer stopped unexpectedly", exc_info=task.exception())
