"""The ledger as the app holds it: the queue the request path emits to (Redis stream, else
in-process), the writer task and the table upkeep task; `open_ledger` is used by the lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.ledger.dead_letters import DeadLetters
from gateway.ledger.events import GenerationEvent
from gateway.ledger.metrics import LedgerStatus
from gateway.ledger.migrate import upgrade_engine
from gateway.ledger.queue import InProcessLedger
from gateway.ledger.source import LedgerSource
from gateway.ledger.spool import Spool, open_spool
from gateway.ledger.store import LedgerStore
from gateway.ledger.stream import RedisStreamLedger
from gateway.ledger.upkeep import Upkeep, upkeep_for
from gateway.ledger.writer import LedgerWriter
from gateway.redis_topology import BackgroundRedis
from gateway.resp import Commands
from gateway.settings import Settings
from gateway.unit_of_work import UnitOfWork
from providers.background import stop_task

log = logging.getLogger("gateway.ledger")

UPKEEP_INTERVAL_S = 3600.0  # partitions are made days ahead: hourly is plenty
UPKEEP_RETRY_S = 60.0


class Ledger:
    """A `LedgerSink` for the chat service, plus the status of the queue behind it."""

    def __init__(
        self,
        queue: InProcessLedger | RedisStreamLedger,
        writer: LedgerWriter,
        writer_here: bool = True,
        dead_letters: DeadLetters | None = None,
        spool: Spool | None = None,
    ) -> None:
        self._queue = queue
        self.writer = writer
        self.writer_here = writer_here  # False: the writer runs in another process
        self.dead_letters = dead_letters
        self.upkeep_task: asyncio.Task[None] | None = None
        self.spool = spool  # with the Redis stream: where refused events wait

    @property
    def source(self) -> LedgerSource:
        return self._queue

    async def emit(self, event: GenerationEvent) -> None:
        await self._queue.emit(event)

    def emit_into(self, work: UnitOfWork, event: GenerationEvent) -> None:
        self._queue.emit_into(work, event)

    async def status(self) -> LedgerStatus:
        depth: int | None
        try:
            depth = await self._queue.depth()
            age = await self._queue.oldest_age_s()
        except (RedisError, OSError):
            depth, age = None, None
        dead: int | None = None
        if self.dead_letters is not None:
            try:
                dead = await self.dead_letters.count()
                if isinstance(self._queue, RedisStreamLedger):
                    dead += await self._queue.undecodable()
            except (SQLAlchemyError, RedisError, OSError):
                dead = None
        return LedgerStatus(
            source=self._queue.kind,
            durable=self._queue.durable,
            writer_running=self.writer.running,
            queue_depth=depth,
            lag_seconds=age or 0.0,
            counters=self.writer.counters,
            writer_here=self.writer_here,
            dead_letters=dead,
            spool_depth=None if self.spool is None else self.spool.depth,
        )


async def _keep_up(upkeep: Upkeep, source: LedgerSource) -> None:
    while True:
        try:
            await upkeep.maintain(datetime.now(UTC).date())
            await source.tidy()
            pause = UPKEEP_INTERVAL_S
        except (SQLAlchemyError, RedisError, OSError, TimeoutError) as exc:
            log.warning("ledger upkeep failed; will retry", extra={"error": type(exc).__name__})
            pause = UPKEEP_RETRY_S
        except Exception:
            log.exception("ledger upkeep failed unexpectedly; will retry")
            pause = UPKEEP_RETRY_S
        await asyncio.sleep(pause)


@asynccontextmanager
async def open_ledger(
    settings: Settings,
    engine: AsyncEngine,
    redis: BackgroundRedis | None,
    resp: Commands | None,
    *,
    writer_here: bool | None = None,
) -> AsyncIterator[Ledger]:
    """The Redis stream when both clients are given (`resp` for the request path's XADD),
    else the in-process queue. The writer and upkeep run here unless `settings.ledger.writer`
    (or `writer_here=False`) leaves a Redis stream to `gateway ledger-writer`."""
    config = settings.ledger
    if engine.dialect.name == "sqlite":
        # The embedded default keeps itself current; Postgres is migrated by `gateway migrate`.
        await upgrade_engine(engine)
    queue: InProcessLedger | RedisStreamLedger
    if redis is None or resp is None:
        queue = InProcessLedger()
    else:
        queue = RedisStreamLedger(
            redis, settings.redis.redis_prefix, claim_idle_s=config.claim_idle_s, resp=resp
        )
    upkeep = upkeep_for(engine, config.retention_days)
    dead_letters = DeadLetters(engine)
    writer = LedgerWriter(
        queue,
        LedgerStore(engine, upkeep),
        batch_size=config.batch_size,
        flush_interval_s=config.flush_interval_s,
        drain_timeout_s=config.drain_timeout_s,
        dead_letters=dead_letters,
    )
    if writer_here is None:
        writer_here = config.writer != "external"
    upkeep_task: asyncio.Task[None] | None = None
    writer_here = writer_here or not queue.durable  # nobody else can read an in-process queue
    if writer_here:
        upkeep_task = asyncio.create_task(_keep_up(upkeep, queue), name="ledger-upkeep")
        writer.start()
    ledger = Ledger(queue, writer, writer_here, dead_letters)
    ledger.upkeep_task = upkeep_task
    try:
        async with AsyncExitStack() as stack:
            if isinstance(queue, RedisStreamLedger):
                ledger.spool = await stack.enter_async_context(
                    open_spool(config.spool_dir, config.spool_max_bytes, queue)
                )
            yield ledger
    finally:
        await stop_task(upkeep_task)
        await writer.stop()
