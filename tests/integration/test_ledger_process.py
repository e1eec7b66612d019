"""The ledger writer in a process of its own: `gateway serve` with Redis (or with
`--ledger-writer-process`) records every answered generation while its workers only queue; the
writer is restarted if it dies and leaves with the server; without Redis the setting is moot."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.db.models import generations, usage_hourly
from gateway.ledger.process import run_writer
from gateway.ledger.writer import LedgerWriter
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.integration.ledger_fixtures import (
    GatewayProcess,
    chat,
    clean_env,
    drop_redis_keys,
    settings_for,
    wait_for_ids,
    writer_pids,
)
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually


@pytest.fixture
async def served_env(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[dict[str, str]]:
    """The environment of a `gateway serve` on Postgres and Redis before one simulated provider."""
    fleet = await start_fleet({"a": Profile(completion_tokens=8)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    try:
        yield clean_env(
            DATABASE_URL=pg_database,
            REDIS_URL=redis_url,
            REDIS_PREFIX=redis_prefix,
            GATEWAY_CATALOG=str(catalog),
            GATEWAY_LEDGER_FLUSH_INTERVAL_S="0.05",
        )
    finally:
        await fleet.close()
        await drop_redis_keys(redis_url, redis_prefix)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("flags", [(), ("--ledger-writer-process",)], ids=["default", "flag"])
async def test_serve_with_a_writer_process_records_every_answer(
    tmp_path: Path, pg_database: str, served_env: dict[str, str], flags: tuple[str, ...]
) -> None:
    engine = create_async_engine(pg_database)
    gateway = GatewayProcess(tmp_path, served_env, *flags)
    try:
        await gateway.ready()
        assert len(writer_pids(gateway.proc.pid)) == 1
        async with httpx.AsyncClient(timeout=30) as client:
            answered = []
            for n in range(12):
                answer = await client.post(f"{gateway.url}/v1/chat/completions", json=chat(f"{n}"))
                assert answer.status_code == 200, answer.text
                answered.append(answer.json()["id"])
            await wait_for_ids(engine, answered)
            status = (await client.get(f"{gateway.url}/api/v1/ledger/status")).json()
        assert status["source"] == "redis-stream" and status["writer_running"] is False
        assert status["writer"] == "another process"
        assert gateway.terminate() in (0, -signal.SIGTERM), gateway.output()
        assert "ledger writer process started" in gateway.output()
        async with engine.connect() as conn:
            requests = await conn.scalar(select(func.sum(usage_hourly.c.requests)))
        assert requests == len(answered)
    finally:
        if gateway.proc.poll() is None:
            gateway.terminate()
        await engine.dispose()


async def test_the_embedded_default_writes_in_process_whatever_the_setting(
    tmp_path: Path,
) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=8)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    settings = settings_for(catalog, database_url, writer="external")
    try:
        async with run_gateway(settings) as gateway, httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{gateway.v1}/chat/completions", json=chat())
            assert answer.status_code == 200, answer.text
            engine = create_async_engine(database_url)
            try:
                await wait_for_ids(engine, [answer.json()["id"]])
                async with engine.connect() as conn:
                    stored = await conn.scalar(select(func.count()).select_from(generations))
                assert stored == 1
            finally:
                await engine.dispose()
    finally:
        await fleet.close()


async def test_no_writer_process_means_every_worker_writes(
    tmp_path: Path, served_env: dict[str, str]
) -> None:
    gateway = GatewayProcess(tmp_path, served_env, "--no-ledger-writer-process")
    try:
        await gateway.ready()
        assert writer_pids(gateway.proc.pid) == set()
        async with httpx.AsyncClient(timeout=30) as client:
            status = (await client.get(f"{gateway.url}/api/v1/ledger/status")).json()
        assert status["source"] == "redis-stream" and status["writer_running"] is True
        assert status["writer"] == "this process"
    finally:
        gateway.terminate()


async def test_a_dead_writer_is_restarted_and_the_writer_leaves_with_the_server(
    tmp_path: Path, pg_database: str, served_env: dict[str, str]
) -> None:
    env = {**served_env, "GATEWAY_LEDGER_CLAIM_IDLE_S": "1"}
    engine = create_async_engine(pg_database)
    gateway = GatewayProcess(tmp_path, env)
    try:
        await gateway.ready()
        (first,) = writer_pids(gateway.proc.pid)
        os.kill(first, signal.SIGKILL)
        await eventually(
            lambda: bool(writer_pids(gateway.proc.pid) - {first}),
            timeout_s=30,
            what="a new ledger writer process",
        )
        (second,) = writer_pids(gateway.proc.pid)
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{gateway.url}/v1/chat/completions", json=chat("again"))
            assert answer.status_code == 200, answer.text
        await wait_for_ids(engine, [answer.json()["id"]])
        assert "ledger writer process exited; restarting it" in gateway.output()
        gateway.kill()  # SIGKILL: the server can't stop its writer; the writer notices
        await eventually(lambda: not alive(second), timeout_s=30, what="the writer to leave")
    finally:
        if gateway.proc.poll() is None:
            gateway.terminate()
        await engine.dispose()


async def test_a_writer_process_whose_writer_died_exits_with_1(
    tmp_path: Path,
    engine: AsyncEngine,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exit status 1 is what makes `gateway serve` start a new writer process."""

    async def broken(self: LedgerWriter) -> None:
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(LedgerWriter, "_run", broken)
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": "http://127.0.0.1:9"})
    settings = settings_for(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    try:
        assert await asyncio.wait_for(run_writer(settings), timeout=30) == 1
    finally:
        await drop_redis_keys(redis_url, redis_prefix)
