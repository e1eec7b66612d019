"""A ledger writer that can't reach its database: orphaned (its `gateway serve` killed with
SIGKILL) it exits within the drain timeout all the same, leaving what it held in the stream; and
while it lives, what it read but can't commit is not held hostage: a writer that can commit
writes it, so every answered generation reaches the ledger exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.ledger.events import GenerationEvent
from gateway.ledger.migrate import upgrade_to_head_async
from gateway.ledger.process import PARENT_CHECK_S
from gateway.ledger.rows import rows_of
from gateway.ledger.store import LedgerStore
from gateway.ledger.stream import GROUP, RedisStreamLedger, stream_key
from gateway.ledger.upkeep import upkeep_for
from gateway.ledger.writer import BACKOFF_MAX_S, is_transient
from gateway.resp import RespClient
from tests.integration.ledger_fixtures import clean_env, drop_redis_keys, poll, stored_ids
from tests.support.gateway import free_port

DRAIN_TIMEOUT_S = 2.0
# The drain timeout, the parent check's period, and a busy machine's start-up of the exit.
EXIT_SLACK_S = PARENT_CHECK_S + 6.0
# Longer than the writer's longest pause between retries, as in production (30 s against 5 s):
# a writer that refreshed what it holds at every retry would hold it for ever.
CLAIM_IDLE_S = BACKOFF_MAX_S + 1.0


def _event(n: int) -> GenerationEvent:
    return GenerationEvent(
        id=f"gen-1700000000-orphan{n}",
        created_at=datetime.now(UTC),
        requested_model="openai/gpt-oss-20b",
        model="openai/gpt-oss-20b",
        mode="balanced",
        streamed=False,
    )


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never answers (a stalled database)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def unreachable_database(kind: str) -> AsyncIterator[str]:
    if kind == "refused":  # nothing listens there
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gateway"
    elif kind == "dropped":  # the server answers; the database is gone
        yield "postgresql+asyncpg://postgres@127.0.0.1:5432/gw_test_gone_000000000000"
    else:
        async with black_hole() as port:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/gateway"


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def orphanable_writer(
    env: dict[str, str], cwd: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`gateway ledger-writer --exit-with-parent` started by a stand-in for `gateway serve`
    (a shell that waits for it); yields (the parent, the writer's pid)."""
    writer = f"{sys.executable} -m gateway.cli ledger-writer --exit-with-parent --parent-pid $$"
    command = f"{writer} & echo $!; wait"
    parent = subprocess.Popen(
        ["sh", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    assert parent.stdout is not None
    writer = int(parent.stdout.readline())
    try:
        yield parent, writer
    finally:
        for pid in (parent.pid, writer):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=10)


def start_writer(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """`gateway ledger-writer` run by hand, as an operator runs a separate writer."""
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "ledger-writer"], cwd=cwd, env=env
    )


async def pending_of(redis: Redis, key: str) -> dict[str, int]:
    """Consumer name -> entries it holds read but unacked."""
    try:
        info = await redis.xinfo_consumers(key, GROUP)
    except ResponseError:  # NOGROUP: nobody has read yet
        return {}
    return {
        (c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): c["pending"]
        for c in info
    }


@pytest.mark.parametrize(
    ("database", "killed"),
    [
        ("refused", "holding"),
        ("dropped", "holding"),
        ("black-hole", "holding"),
        ("black-hole", "at-start"),  # before the writer could even look at its parent
    ],
)
async def test_an_orphaned_writer_exits_within_the_drain_timeout_without_its_database(
    tmp_path: Path, redis_url: str, redis_prefix: str, database: str, killed: str
) -> None:
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    key = stream_key(redis_prefix)
    try:
        async with unreachable_database(database) as database_url:
            queue = RedisStreamLedger(redis, redis_prefix, claim_idle_s=60, resp=resp)
            await queue.emit(_event(1))
            env = clean_env(
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                REDIS_PREFIX=redis_prefix,
                GATEWAY_LEDGER_DRAIN_TIMEOUT_S=str(DRAIN_TIMEOUT_S),
                GATEWAY_LEDGER_CLAIM_IDLE_S="60",
                GATEWAY_LEDGER_SPOOL_DIR=str(tmp_path / "spool"),
            )
            with orphanable_writer(env, tmp_path) as (parent, writer):

                async def holding() -> bool:
                    return sum((await pending_of(redis, key)).values()) == 1

                if killed == "holding":
                    await poll(holding, timeout_s=30, what="the writer to hold the entry")
                parent.send_signal(signal.SIGKILL)  # the server is gone, SIGKILLed
                parent.wait(timeout=10)
                killed_at = time.monotonic()
                await poll(
                    lambda: not alive(writer),
                    timeout_s=DRAIN_TIMEOUT_S + EXIT_SLACK_S + 30,
                    what="the orphaned writer to exit",
                )
                took = time.monotonic() - killed_at
            assert took < DRAIN_TIMEOUT_S + EXIT_SLACK_S, f"the writer took {took:.1f} s"
            # What it held stays in the stream for the next writer.
            assert await redis.xlen(key) == 1
    finally:
        await redis.aclose()
        await resp.aclose()
        await drop_redis_keys(redis_url, redis_prefix)


async def test_entries_a_writer_cannot_commit_are_written_by_one_that_can(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    """An orphaned writer pointed at a dead database reads an entry first; a healthy writer
    started after it still writes that entry (and everything else): N emitted == N rows."""
    await upgrade_to_head_async(pg_database)
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    engine = create_async_engine(pg_database)
    key = stream_key(redis_prefix)
    base = clean_env(
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        GATEWAY_LEDGER_CLAIM_IDLE_S=str(CLAIM_IDLE_S),
        GATEWAY_LEDGER_FLUSH_INTERVAL_S="0.05",
        GATEWAY_LEDGER_SPOOL_DIR=str(tmp_path / "spool"),
    )
    healthy: subprocess.Popen[bytes] | None = None
    try:
        async with unreachable_database("refused") as dead_url:
            broken_env = {**base, "DATABASE_URL": dead_url}
            queue = RedisStreamLedger(redis, redis_prefix, claim_idle_s=CLAIM_IDLE_S, resp=resp)
            await queue.emit(_event(0))
            with orphanable_writer(broken_env, tmp_path) as (_parent, _writer):

                async def broken_holds() -> bool:
                    return sum((await pending_of(redis, key)).values()) == 1

                await poll(broken_holds, timeout_s=30, what="the broken writer to hold the entry")
                (broken_name,) = (await pending_of(redis, key)).keys()
                healthy = start_writer({**base, "DATABASE_URL": pg_database}, tmp_path)
                emitted = [_event(0).id]
                for n in range(1, 20):
                    await queue.emit(_event(n))
                    emitted.append(_event(n).id)

                async def all_written() -> bool:
                    return set(emitted) <= set(await stored_ids(engine))

                # The claim interval, then the healthy writer's next claim sweep (half of it).
                await poll(
                    all_written, timeout_s=2 * CLAIM_IDLE_S + 30, what="every entry in the ledger"
                )
                stored = await stored_ids(engine)
                assert sorted(stored) == sorted(emitted)  # N emitted == N rows, none twice
                assert (await pending_of(redis, key)).get(broken_name, 0) == 0 or (
                    await redis.xlen(key)
                ) == 0
    finally:
        if healthy is not None:
            healthy.terminate()
            healthy.wait(timeout=30)
        await engine.dispose()
        await redis.aclose()
        await resp.aclose()
        await drop_redis_keys(redis_url, redis_prefix)


@pytest.mark.parametrize("database", ["refused", "dropped"])
async def test_not_reaching_the_database_is_retried_never_blamed_on_the_rows(database: str) -> None:
    """A write that can't get a connection (nothing listens; the database is gone) raises a
    transient error: the writer retries the batch instead of bisecting it into dead letters."""
    async with unreachable_database(database) as url:
        engine = create_async_engine(url)
        try:
            store = LedgerStore(engine, upkeep_for(engine, 90))
            with pytest.raises((OperationalError, OSError)) as raised:
                await store.write([rows_of(_event(1))])
        finally:
            await engine.dispose()
    assert is_transient(raised.value)
