"""The ledger writer: reads waiting events in batches, commits, then acks. Never drops, never
acks uncommitted: transient failures (a lost connection, a server shutting down, a timeout)
retry with backoff; any other failure is the rows' own: the batch is halved until the offending
rows stand alone, and those are set aside as dead letters (`gateway.ledger.dead_letters`).
A batch it can't commit within the source's claim interval is left to writers that can."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
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
        self._in_flight: asyncio.Timeout | None = None  # the database call under way
        self._resume_at = 0.0  # monotonic: a writer that left a batch reads again from then
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
        if self._in_flight is not None:
            # A database call that hangs (a black-holed server) ends with the drain, not later.
            deadline = asyncio.get_running_loop().time() + self._drain_timeout_s
            when = self._in_flight.when()
            self._in_flight.reschedule(deadline if when is None else min(when, deadline))
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
            if await self._resting():
                continue
            try:
                await self.step(min(self._flush_interval_s, MAX_IDLE_WAIT_S))
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("ledger queue unreachable", extra={"error": type(exc).__name__})
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            except Exception:
                # Unforeseen (a driver's internal error, a bug): a writer that stopped would stop
                # the whole ledger. Log, hand the step's entries back, and go on.
                log.exception("ledger writer step failed; retrying")
                with contextlib.suppress(RedisError, OSError):
                    await self._source.recover()
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            delay = BACKOFF_MIN_S
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            while time.monotonic() < self._deadline and await self.step(0):
                pass

    async def _pause(self, seconds: float) -> None:
        """Sleep between retries; stop() cuts it to what is left of the drain."""
        if self._stopping.is_set():
            await asyncio.sleep(min(seconds, max(self._deadline - time.monotonic(), 0.0)))
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _resting(self) -> bool:
        """After leaving a batch it could not commit, stay away from the queue for one claim
        interval, so that a writer that can commit claims it; True when it rested."""
        rest = self._resume_at - time.monotonic()
        if rest <= 0:
            return False
        await self._pause(rest)
        return True

    async def step(self, wait_s: float) -> bool:
        """One batch: read, commit, ack. False when there was nothing to do or it gave up."""
        batch = await self._source.read(self._batch_size, wait_s)
        if not batch:
            return False
        read_at = time.monotonic()
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
                await self._set_aside(entry, f"InvalidEvent: {exc}", read_at)
        if not await self._write(pairs, read_at):
            return False
        return await self._ack([entry for entry, _ in pairs])

    def _giving_up(self) -> bool:
        # A durable source keeps what we leave; the in-process queue is retried to the deadline.
        return self._stopping.is_set() and (
            self._source.durable or time.monotonic() >= self._deadline
        )

    def _leaving(self, read_at: float, events: int) -> bool:
        """Past the claim interval without a commit, the batch is left (unacked) to the other
        writers: the source lets any writer claim it, and this one rests a claim interval."""
        hold = self._source.claim_idle_s
        if hold is None or time.monotonic() - read_at < hold:
            return False
        log.warning(
            "ledger batch not committed within the claim interval; left to another writer",
            extra={"events": events, "claim_idle_s": hold},
        )
        self._resume_at = time.monotonic() + hold
        return True

    @contextlib.asynccontextmanager
    async def _database_call(self) -> AsyncIterator[None]:
        """WRITE_TIMEOUT_S on one database call, cut short by stop() to the drain deadline."""
        async with asyncio.timeout(WRITE_TIMEOUT_S) as timeout:
            if self._stopping.is_set():
                left = max(self._deadline - time.monotonic(), 0.0)
                timeout.reschedule(asyncio.get_running_loop().time() + min(left, WRITE_TIMEOUT_S))
            self._in_flight = timeout
            try:
                yield
            finally:
                self._in_flight = None

    async def _write(self, pairs: Sequence[Pair], read_at: float) -> bool:
        if not pairs:
            return True
        delay = BACKOFF_MIN_S
        while True:
            try:
                async with self._database_call():
                    inserted = await self._store.write([rows for _, rows in pairs])
            except Exception as exc:
                if not is_transient(exc):
                    return await self._isolate(pairs, exc, read_at)
                self.counters.write_errors_total += 1
                log.warning(
                    "ledger batch not committed; will retry",
                    extra={"events": len(pairs), "error": type(exc).__name__, "retry_s": delay},
                )
                if self._giving_up() or self._leaving(read_at, len(pairs)):
                    return False
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.counters.batches_total += 1
            self.counters.written_total += inserted
            self.counters.replayed_total += len(pairs) - inserted
            self.counters.last_commit_at = datetime.now(UTC)
            return True

    async def _isolate(self, pairs: Sequence[Pair], exc: Exception, read_at: float) -> bool:
        """The database refused something in `pairs`: halve until the culprits stand alone."""
        log.warning(
            "ledger batch refused; isolating its rows",
            extra={"events": len(pairs), "error": _reason(exc)[:500]},
        )
        if len(pairs) == 1:
            return await self._set_aside(pairs[0][0], _reason(exc), read_at)
        half = len(pairs) // 2
        return await self._write(pairs[:half], read_at) and await self._write(pairs[half:], read_at)

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
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _set_aside(self, entry: Entry, reason: str, read_at: float) -> bool:
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
                async with self._database_call():
                    await self._dead_letters.put(entry.id, entry.event, reason)
                break
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("ledger dead letter not stored", extra={"error": type(exc).__name__})
                if self._giving_up() or self._leaving(read_at, 1):
                    return False
                await self._pause(delay)
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
