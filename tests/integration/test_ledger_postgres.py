"""The ledger against real Postgres and Redis: what the client saw is what was recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import generations, usage_hourly
from gateway.ledger.events import GenerationEvent
from gateway.ledger.partitions import PostgresPartitions, partition_name
from gateway.ledger.rows import rows_of
from gateway.ledger.store import LedgerStore
from providers.pricing import Cost
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from providers.usage import Usage
from routing.executor import Attempt
from tests.integration.ledger_fixtures import (
    attempt_rows,
    chat,
    decimal_json,
    drop_redis_keys,
    generation_rows,
    settings_for,
    stream_chunks,
    wait_for_ids,
)
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

PER_MILLION = Decimal(1_000_000)
# write_catalog prices: first endpoint prompt 0.01, completion 0.1, cache_read 0.001 per 1M.
A_PROMPT, A_COMPLETION, A_CACHE_READ = Decimal("0.01"), Decimal("0.1"), Decimal("0.001")
ORDER_A_B = {"provider": {"order": ["a", "b"], "allow_fallbacks": True}}


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(
        {
            "a": Profile(completion_tokens=24, reasoning_tokens=6, cache_min_tokens=256),
            "b": Profile(completion_tokens=16),
        }
    )
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
    catalog = write_catalog(
        tmp_path / "catalog.toml", {"a": fleet.url_for("a"), "b": fleet.url_for("b")}
    )
    settings = settings_for(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    try:
        async with run_gateway(settings) as running:
            yield running
    finally:
        await drop_redis_keys(redis_url, redis_prefix)


async def test_streamed_and_non_streamed_are_recorded_as_the_client_saw_them(
    gateway: RunningGateway, engine: AsyncEngine
) -> None:
    headers = {"HTTP-Referer": "https://app.example", "X-Title": "Example App"}
    async with httpx.AsyncClient(timeout=30) as client:
        plain = await client.post(
            f"{gateway.v1}/chat/completions", json=chat(**ORDER_A_B), headers=headers
        )
        streamed = await client.post(
            f"{gateway.v1}/chat/completions", json=chat(stream=True, **ORDER_A_B), headers=headers
        )
    assert plain.status_code == 200 and streamed.status_code == 200
    body = decimal_json(plain.text)
    chunks = stream_chunks(streamed.text)
    stream_usage = next(c["usage"] for c in chunks if c.get("usage"))
    seen = {body["id"]: (body["usage"], False), chunks[0]["id"]: (stream_usage, True)}

    await wait_for_ids(gateway_engine := engine, list(seen))
    rows = await generation_rows(gateway_engine, list(seen))
    for generation_id, (usage, was_streamed) in seen.items():
        row = rows[generation_id]
        assert row["streamed"] is was_streamed
        assert row["provider"] == "a"
        assert row["prompt_tokens"] == usage["prompt_tokens"]
        assert row["completion_tokens"] == usage["completion_tokens"]
        assert row["reasoning_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"]
        assert row["cached_tokens"] == usage["prompt_tokens_details"]["cached_tokens"]
        assert row["cost"] == Decimal(usage["cost"])  # exact: no tolerance
        assert row["cache_discount"] == Decimal(usage["cost_details"]["cache_discount"])
        expected = (
            usage["prompt_tokens"] * A_PROMPT + usage["completion_tokens"] * A_COMPLETION
        ) / PER_MILLION
        assert row["cost"] == expected
        assert row["finish_reason"] == "stop" and row["status"] == "ok"
        assert row["app_referer"] == "https://app.example" and row["app_title"] == "Example App"
        assert row["attempt_count"] == 1
        assert row["latency_ms"] > 0 and row["ttft_ms"] is not None
        assert row["throughput"] is not None and row["throughput"] > 0

    async with httpx.AsyncClient(timeout=10) as client:
        for generation_id, (usage, was_streamed) in seen.items():
            answer = await client.get(
                f"{gateway.url}/api/v1/generation", params={"id": generation_id}
            )
            assert answer.status_code == 200, answer.text
            data = decimal_json(answer.text)["data"]
            assert data["id"] == generation_id
            assert Decimal(data["total_cost"]) == Decimal(usage["cost"])
            assert data["streamed"] is was_streamed and data["cancelled"] is False
            assert data["tokens_prompt"] == data["native_tokens_prompt"] == usage["prompt_tokens"]
            assert data["native_tokens_completion"] == usage["completion_tokens"]
            assert data["native_tokens_reasoning"] == 6
            assert data["provider_name"] == "a" and data["model"] == "openai/gpt-oss-20b"
            assert data["origin"] == "https://app.example"
            assert data["moderation_latency"] is None
            assert data["finish_reason"] == "stop"
            [attempt] = data["provider_responses"]
            assert attempt["provider"] == "a" and attempt["outcome"] == "ok"
            assert attempt["status"] == 200

    async with engine.connect() as conn:
        rollup = (await conn.execute(select(usage_hourly))).mappings().all()
    assert sum(r["requests"] for r in rollup) == 2
    assert sum((r["cost"] for r in rollup), Decimal(0)) == sum(
        (Decimal(u["cost"]) for u, _ in seen.values()), Decimal(0)
    )
    assert {r["app"] for r in rollup} == {"Example App"}


async def test_cached_prefix_is_priced_at_the_cache_read_rate(
    gateway: RunningGateway, engine: AsyncEngine
) -> None:
    system = "Ledger entries are exact and never lost. " * 120  # ~1200 tokens, one prefix
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "go"}]
    body = {"model": "openai/gpt-oss-20b", "messages": messages, **ORDER_A_B}
    async with httpx.AsyncClient(timeout=30) as client:
        first = decimal_json((await client.post(f"{gateway.v1}/chat/completions", json=body)).text)
        second = decimal_json((await client.post(f"{gateway.v1}/chat/completions", json=body)).text)
    usage = second["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert cached > 0

    await wait_for_ids(engine, [first["id"], second["id"]])
    row = (await generation_rows(engine, [second["id"]]))[second["id"]]
    uncached = usage["prompt_tokens"] - cached
    expected_cost = (
        uncached * A_PROMPT + cached * A_CACHE_READ + usage["completion_tokens"] * A_COMPLETION
    ) / PER_MILLION
    expected_discount = cached * (A_PROMPT - A_CACHE_READ) / PER_MILLION
    assert row["cached_tokens"] == cached
    assert row["cost"] == expected_cost == Decimal(usage["cost"])
    assert (
        row["cache_discount"]
        == expected_discount
        == Decimal(usage["cost_details"]["cache_discount"])
    )
    async with engine.connect() as conn:
        cached_sum = await conn.scalar(select(func.sum(usage_hourly.c.cached_tokens)))
    assert cached_sum == cached


async def test_fallback_generation_has_one_attempt_row_per_upstream_call(
    gateway: RunningGateway, fleet: Fleet, engine: AsyncEngine
) -> None:
    await fleet.set_profile("a", failures={"http_500": 1.0})
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"{gateway.v1}/chat/completions", json=chat(**ORDER_A_B))
    assert answer.status_code == 200, answer.text
    generation_id = answer.json()["id"]
    await wait_for_ids(engine, [generation_id])
    rows = await attempt_rows(engine, generation_id)
    generation = (await generation_rows(engine, [generation_id]))[generation_id]
    assert len(rows) == generation["attempt_count"] == int(answer.headers["X-Route-Attempts"])
    assert len(rows) >= 2
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    first, last = rows[0], rows[-1]
    assert first["provider"] == "a" and first["http_status"] == 500
    assert first["outcome"] != "ok" and first["error_class"] == "UpstreamServerError"
    assert last["provider"] == "b" and last["outcome"] == "ok"
    assert generation["provider"] == "b"
    assert all(r["ended_at"] >= r["started_at"] for r in rows)

    async with httpx.AsyncClient(timeout=10) as client:
        data = (
            await client.get(f"{gateway.url}/api/v1/generation", params={"id": generation_id})
        ).json()["data"]
    responses = data["provider_responses"]
    assert (responses[0]["provider"], responses[0]["status"]) == ("a", 500)
    assert responses[-1]["provider"] == "b" and responses[-1]["outcome"] == "ok"


async def test_generation_api_errors_and_key_scoping(
    gateway: RunningGateway, engine: AsyncEngine
) -> None:
    other_key = _event("gen-1700000000-0ther", api_key_id="key-someone-else")
    store = LedgerStore(engine, PostgresPartitions(engine, retention_days=90))
    assert await store.write([rows_of(other_key)]) == 1
    async with httpx.AsyncClient(timeout=10) as client:
        missing = await client.get(f"{gateway.url}/api/v1/generation")
        unknown = await client.get(f"{gateway.url}/api/v1/generation", params={"id": "gen-nope"})
        foreign = await client.get(f"{gateway.url}/api/v1/generation", params={"id": other_key.id})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == 400
    assert missing.json()["error"]["metadata"]["reason"] == "bad_request"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == 404
    assert unknown.json()["error"]["metadata"]["reason"] == "not_found"
    assert foreign.status_code == 404  # another key's generation looks like no generation


async def test_metrics_and_status_report_the_queue(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        status = (await client.get(f"{gateway.url}/api/v1/ledger/status")).json()
        metrics = (await client.get(f"{gateway.url}/metrics")).text
    assert status["source"] == "redis-stream" and status["durable"] is True
    assert status["writer_running"] is True and status["queue_depth"] == 0
    for name in (
        "gateway_ledger_queue_depth",
        "gateway_ledger_lag_seconds",
        "gateway_ledger_written_total",
    ):
        assert f"\n{name} " in f"\n{metrics}"


def _event(generation_id: str, *, created_at: datetime | None = None, **fields) -> GenerationEvent:
    created = created_at or datetime.now(UTC)
    return GenerationEvent(
        id=generation_id,
        created_at=created,
        requested_model="openai/gpt-oss-20b",
        model="openai/gpt-oss-20b",
        mode="balanced",
        streamed=False,
        provider="a",
        endpoint_id="openai/gpt-oss-20b@a",
        usage=Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=50),
        cost=Cost(
            Decimal("0.000000550000"), Decimal("0.000001"), Decimal(0), Decimal("0.00000045")
        ),
        attempts=[Attempt("openai/gpt-oss-20b@a", "a", created, 0.25, 0.1)],
        latency_s=0.3,
        **fields,
    )


async def test_replayed_batches_are_stored_once_and_counted_once(engine: AsyncEngine) -> None:
    store = LedgerStore(engine, PostgresPartitions(engine, retention_days=90))
    events = [_event(f"gen-1700000000-replay{i}") for i in range(5)]
    assert await store.write([rows_of(e) for e in events]) == 5
    # A crashed writer's batch comes back, alongside one new event and a duplicate within it.
    again = [*events, _event("gen-1700000000-replay5"), events[0]]
    assert await store.write([rows_of(e) for e in again]) == 1
    async with engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(generations))
        requests = await conn.scalar(select(func.sum(usage_hourly.c.requests)))
        cost = await conn.scalar(select(func.sum(usage_hourly.c.cost)))
        raw_cost = await conn.scalar(select(func.sum(generations.c.cost)))
    assert count == 6 and requests == 6
    assert cost == raw_cost == 6 * Decimal("0.000001550000")


async def test_partitions_are_made_ahead_and_dropped_past_retention(engine: AsyncEngine) -> None:
    partitions = PostgresPartitions(engine, retention_days=30)
    today = datetime.now(UTC).date()
    old = datetime.now(UTC) - timedelta(days=45)
    store = LedgerStore(engine, partitions)
    assert await store.write([rows_of(_event("gen-1700000000-old", created_at=old))]) == 1
    assert await store.write([rows_of(_event("gen-1700000000-new"))]) == 1
    await partitions.maintain(today)

    async with engine.connect() as conn:
        tables = set(
            (
                await conn.scalars(
                    text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'generations_p%'")
                )
            ).all()
        )
        ids = set((await conn.scalars(select(generations.c.id))).all())
    assert partition_name("generations", old.date()) not in tables  # dropped whole
    for ahead in range(4):
        assert partition_name("generations", today + timedelta(days=ahead)) in tables
    assert ids == {"gen-1700000000-new"}
