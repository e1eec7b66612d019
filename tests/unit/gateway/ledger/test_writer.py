"""The writer never drops and never acks what is not committed (fake store, in-process queue)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from datetime import datetime

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.ledger import writer as writer_module
from gateway.ledger.queue import InProcessLedger
from gateway.ledger.rows import LedgerRows
from gateway.ledger.source import Entry
from gateway.ledger.writer import LedgerWriter
from tests.support.polling import eventually
from tests.unit.gateway.ledger.factories import make_event


class FakeStore:
    """Stores rows by generation id; fails as told."""

    def __init__(self, failures: int = 0, poison: frozenset[str] = frozenset()) -> None:
        self.rows: dict[str, LedgerRows] = {}
        self.failures = failures
        self.poison = poison
        self.calls = 0

    async def write(self, batch: Sequence[LedgerRows]) -> int:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database is down"))
        if any(rows.id in self.poison for rows in batch):
            raise IntegrityError("INSERT", {}, ValueError("check constraint"))
        inserted = 0
        for rows in batch:
            if rows.id not in self.rows:
                self.rows[rows.id] = rows
                inserted += 1
        return inserted


class DurableQueue(InProcessLedger):
    """The in-process queue pretending to be durable, recording acks."""

    durable = True

    def __init__(self) -> None:
        super().__init__()
        self.acked: list[str] = []

    async def ack(self, entries: Sequence[Entry]) -> None:
        self.acked += [e.id for e in entries]
        await super().ack(entries)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "BACKOFF_MIN_S", 0.001)
    monkeypatch.setattr(writer_module, "BACKOFF_MAX_S", 0.01)


poll = functools.partial(eventually, timeout_s=5.0, interval_s=0.005)


def make_writer(queue: InProcessLedger, store: FakeStore, **options: float) -> LedgerWriter:
    settings = {"batch_size": 4, "flush_interval_s": 0.01, "drain_timeout_s": 1.0, **options}
    return LedgerWriter(queue, store, **settings)  # type: ignore[arg-type]


async def test_transient_failures_are_retried_until_committed() -> None:
    queue, store = InProcessLedger(), FakeStore(failures=3)
    writer = make_writer(queue, store)
    writer.start()
    for n in range(10):
        await queue.emit(make_event(n))
    await poll(lambda: len(store.rows) == 10)
    await writer.stop()
    assert await queue.depth() == 0
    assert writer.counters.write_errors_total == 3
    assert writer.counters.written_total == 10


async def test_a_poisoned_event_is_isolated_and_set_aside(caplog: pytest.LogCaptureFixture) -> None:
    queue = InProcessLedger()
    store = FakeStore(poison=frozenset({make_event(5).id}))
    writer = make_writer(queue, store, batch_size=8)
    for n in range(8):
        await queue.emit(make_event(n))
    with caplog.at_level(logging.ERROR, logger="gateway.ledger.queue"):
        writer.start()
        await poll(lambda: len(store.rows) == 7)
        await writer.stop()
    assert make_event(5).id not in store.rows
    assert writer.counters.dead_letters_total == 1
    assert await queue.depth() == 0
    assert make_event(5).id in caplog.text  # the event itself is kept in the log record


async def test_an_unstorable_event_does_not_block_the_batch() -> None:
    queue, store = InProcessLedger(), FakeStore()
    writer = make_writer(queue, store)
    await queue.emit(make_event(1))
    await queue.emit(make_event(2, created_at=datetime(2025, 1, 1)))  # naive: refused
    await queue.emit(make_event(3))
    writer.start()
    await poll(lambda: len(store.rows) == 2)
    await writer.stop()
    assert writer.counters.dead_letters_total == 1


async def test_stop_drains_the_queue() -> None:
    queue, store = InProcessLedger(), FakeStore()
    writer = make_writer(queue, store)
    writer.start()
    for n in range(50):
        await queue.emit(make_event(n))
    await writer.stop()
    assert len(store.rows) == 50 and await queue.depth() == 0
    assert not writer.running


async def test_replays_are_counted_not_written_twice() -> None:
    queue, store = InProcessLedger(), FakeStore()
    writer = make_writer(queue, store)
    writer.start()
    for _ in range(2):
        await queue.emit(make_event(7))
    await poll(lambda: writer.counters.replayed_total + writer.counters.written_total == 2)
    await writer.stop()
    assert writer.counters.written_total == 1 and writer.counters.replayed_total == 1


async def test_a_durable_source_is_left_unacked_when_stopping_with_the_database_down() -> None:
    queue, store = DurableQueue(), FakeStore(failures=10_000)
    writer = make_writer(queue, store)
    await queue.emit(make_event(1))
    writer.start()
    await poll(lambda: store.calls >= 2)
    started = time.monotonic()
    await writer.stop()
    assert time.monotonic() - started < 1.0  # did not wait out the drain timeout
    assert queue.acked == [] and store.rows == {}


async def test_the_in_process_queue_retries_until_the_drain_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue, store = InProcessLedger(), FakeStore(failures=10_000)
    writer = make_writer(queue, store, drain_timeout_s=0.2)
    await queue.emit(make_event(1))
    writer.start()
    with caplog.at_level(logging.ERROR, logger="gateway.ledger.writer"):
        await writer.stop()
    assert "lost at shutdown" in caplog.text


class BuggyStore(FakeStore):
    """Raises an error nobody foresaw on its first write."""

    async def write(self, batch: Sequence[LedgerRows]) -> int:
        if self.calls == 0:
            self.calls += 1
            raise RuntimeError("a bug")
        return await super().write(batch)


async def test_an_unforeseen_error_neither_stops_the_writer_nor_loses_its_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = InProcessLedger()
    store = BuggyStore()
    writer = LedgerWriter(queue, store, batch_size=10, flush_interval_s=0.01, drain_timeout_s=1)
    for n in range(5):
        await queue.emit(make_event(n))
    writer.start()
    try:
        await eventually(lambda: len(store.rows) == 5, what="every event written after the bug")
        assert writer.running and await queue.depth() == 0
        assert "ledger batch refused; isolating its rows" in caplog.text
    finally:
        await writer.stop()


async def test_the_in_process_queue_is_bounded() -> None:
    from gateway.ledger.stream import LedgerUnavailable

    queue = InProcessLedger(max_events=3)
    for n in range(3):
        await queue.emit(make_event(n))
    with pytest.raises(LedgerUnavailable):
        await queue.emit(make_event(3))
    taken = await queue.read(10, 0)
    await queue.ack(taken)
    await queue.emit(make_event(4))  # room again once written
    assert await queue.depth() == 1


def test_what_is_transient_and_what_is_the_rows_fault() -> None:
    from sqlalchemy.exc import DataError, StatementError

    assert writer_module.is_transient(OperationalError("x", {}, ConnectionResetError()))
    assert writer_module.is_transient(TimeoutError())
    assert writer_module.is_transient(ConnectionRefusedError())
    assert not writer_module.is_transient(IntegrityError("x", {}, ValueError()))
    assert not writer_module.is_transient(DataError("x", {}, ValueError("54000")))
    assert not writer_module.is_transient(StatementError("bind", "x", {}, UnicodeEncodeError))
    assert not writer_module.is_transient(RuntimeError("a driver bug on one value"))


class ClaimableQueue(DurableQueue):
    """A durable queue whose unacked entries other writers could claim after `claim_idle_s`
    (as the Redis stream's), recording every read."""

    claim_idle_s = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[float] = []

    async def read(self, count: int, wait_s: float) -> list[Entry]:
        self.reads.append(time.monotonic())
        return await super().read(count, min(wait_s, 0.005))


async def test_a_batch_it_cannot_commit_is_left_to_other_writers_after_the_claim_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue, store = ClaimableQueue(), FakeStore(failures=10**9)
    writer = make_writer(queue, store)
    with caplog.at_level(logging.WARNING, logger="gateway.ledger.writer"):
        writer.start()
        await queue.emit(make_event(1))
        await poll(lambda: "left to another writer" in caplog.text, what="the batch left")
        left_at = time.monotonic()
        calls = store.calls
        # It rests a claim interval: no read, no write (a writer that can commit claims it).
        await poll(lambda: any(t > left_at for t in queue.reads), what="reading again")
        resumed = min(t for t in queue.reads if t > left_at)
        await writer.stop()
    assert resumed - left_at >= ClaimableQueue.claim_idle_s * 0.9
    assert store.calls >= calls and queue.acked == []  # never acked what it didn't commit


async def test_stop_cuts_a_hanging_database_call_at_the_drain_timeout() -> None:
    class HangingStore(FakeStore):
        async def write(self, batch: Sequence[LedgerRows]) -> int:
            self.calls += 1
            await asyncio.Event().wait()  # a black-holed database
            return 0

    queue, store = DurableQueue(), HangingStore()
    writer = make_writer(queue, store, drain_timeout_s=0.2)
    writer.start()
    await queue.emit(make_event(1))
    await poll(lambda: store.calls == 1, what="the write under way")
    started = time.monotonic()
    await writer.stop()
    took = time.monotonic() - started
    # Not the 30 s write timeout, nor the drain plus the stop grace (5 s): the drain.
    assert took < 0.2 + 1.0, f"stop took {took:.2f} s"
    assert queue.acked == []
