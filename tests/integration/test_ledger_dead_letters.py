"""A row Postgres refuses for any reason never stops the ledger: the writer bisects the batch,
the refused row becomes a dead letter (visible in status, /metrics, the CLI) and is replayable."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.ledger.dead_letters import DeadLetters
from gateway.ledger.events import GenerationEvent
from gateway.ledger.metrics import LedgerStatus
from gateway.ledger.store import LedgerStore
from gateway.ledger.stream import RedisStreamLedger
from gateway.ledger.upkeep import upkeep_for
from gateway.ledger.writer import LedgerWriter
from gateway.resp import RespClient
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.ledger_fixtures import (
    chat,
    drop_redis_keys,
    generation_rows,
    poll,
    settings_for,
    stored_ids,
    wait_for_ids,
)
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

REPO = Path(__file__).resolve().parents[2]
# A trigger that refuses one app the way Postgres refuses an oversized index row: SQLSTATE 54000
# (program_limit_exceeded), which the writer used to retry forever.
POISON_TRIGGER = """
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.app_title = 'poison' THEN
        RAISE EXCEPTION 'index row size exceeds btree maximum' USING ERRCODE = '54000';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON generations
    FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


def _event(n: int, title: str | None = None) -> GenerationEvent:
    return GenerationEvent(
        id=f"gen-1700000000-d{n}",
        created_at=datetime.now(UTC),
        requested_model="openai/gpt-oss-20b",
        model="openai/gpt-oss-20b",
        mode="balanced",
        streamed=False,
        app_title=title,
    )


async def _execute(engine: AsyncEngine, sql: str) -> None:
    async with engine.begin() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(sql)  # type: ignore[union-attr]


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "ledger", "dead-letters", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_row_postgres_refuses_is_set_aside_and_the_rest_is_written(
    engine: AsyncEngine, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    await _execute(engine, POISON_TRIGGER)
    redis, resp = Redis.from_url(redis_url), RespClient.from_url(redis_url)
    queue = RedisStreamLedger(redis, redis_prefix, claim_idle_s=30, resp=resp)
    dead_letters = DeadLetters(engine)
    writer = LedgerWriter(
        queue,
        LedgerStore(engine, upkeep_for(engine, 90)),
        batch_size=50,
        flush_interval_s=0.05,
        drain_timeout_s=5,
        dead_letters=dead_letters,
    )
    events = [_event(n, "poison" if n == 7 else "fine") for n in range(20)]
    try:
        for event in events:
            await queue.emit(event)
        writer.start()
        good = [e.id for e in events if e.app_title == "fine"]
        await wait_for_ids(engine, good, timeout_s=10)

        async def set_aside() -> bool:
            return await dead_letters.count() == 1 and await queue.depth() == 0

        await poll(set_aside, timeout_s=10, what="the poison row as a dead letter, queue empty")
        assert writer.running
        assert "gen-1700000000-d7" not in await stored_ids(engine)
        assert writer.counters.dead_letters_total == 1
        # Later events still flow.
        await queue.emit(_event(100, "fine"))
        await wait_for_ids(engine, ["gen-1700000000-d100"], timeout_s=10)
    finally:
        await writer.stop()
        await drop_redis_keys(redis_url, redis_prefix)
        await redis.aclose()
        await resp.aclose()

    listed = _cli(pg_database, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "gen-1700000000-d7" in listed.stdout
    assert "index row size exceeds" in listed.stdout
    # Still refused: the dead letter stays, with the reason.
    again = _cli(pg_database, "replay")
    assert again.returncode == 1 and "still refused 1" in again.stdout
    assert await dead_letters.count() == 1
    # Fixed (here: the trigger dropped), the replay lands it exactly once.
    await _execute(engine, "DROP TRIGGER refuse_poison ON generations")
    replayed = _cli(pg_database, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1, still refused 0" in replayed.stdout
    assert "gen-1700000000-d7" in await stored_ids(engine)
    assert await dead_letters.count() == 0


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"a": Profile(completion_tokens=4)})
    yield fleet
    await fleet.close()


@pytest.fixture
async def gateway(
    fleet: Fleet,
    engine: AsyncEngine,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[RunningGateway]:
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    settings = settings_for(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    try:
        async with run_gateway(settings) as running:
            yield running
    finally:
        await drop_redis_keys(redis_url, redis_prefix)


async def test_a_10kb_random_title_does_not_stop_the_ledger(
    gateway: RunningGateway, engine: AsyncEngine
) -> None:
    rng = random.Random(13)
    title = "".join(rng.choices(string.ascii_letters + string.digits, k=10_000))
    ids: list[str] = []
    async with httpx.AsyncClient(timeout=30) as client:
        hostile = await client.post(
            f"{gateway.v1}/chat/completions",
            json=chat(),
            headers={"X-Title": title, "HTTP-Referer": "https://" + title[:3000]},
        )
        assert hostile.status_code == 200, hostile.text
        ids.append(hostile.json()["id"])
        for _ in range(10):
            answer = await client.post(f"{gateway.v1}/chat/completions", json=chat())
            assert answer.status_code == 200
            ids.append(answer.json()["id"])
    await wait_for_ids(engine, ids, timeout_s=10)
    row = (await generation_rows(engine, ids[:1]))[ids[0]]
    assert row["app_title"] == title[:256] and len(row["app_referer"]) == 256
    # The 10 KB title stays under the header limit (16 KiB) and is cut at the edge.
    status = await gateway.resources.ledger.status()
    assert isinstance(status, LedgerStatus) and status.dead_letters == 0


async def test_a_nul_in_a_models_entry_is_stored_not_dead_lettered(
    gateway: RunningGateway, engine: AsyncEngine
) -> None:
    body = chat(models=["openai/gpt-oss-20b", "evil\u0000model"])
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{gateway.v1}/chat/completions", json=body, headers={"X-Route-Explain": "1"}
        )
        assert answer.status_code == 200, answer.text
        metrics = await client.get(f"{gateway.url}/metrics")
    generation_id = answer.json()["id"]
    await wait_for_ids(engine, [generation_id], timeout_s=10)
    row = (await generation_rows(engine, [generation_id]))[generation_id]
    assert row["explanation"] is not None
    assert "\x00" not in str(row["explanation"])
    assert "gateway_ledger_dead_letters 0" in metrics.text
