"""The embedded default end to end: `gateway serve` with no database configured writes the
ledger to ./var/gateway.sqlite3 through the in-process queue, exactly, and drains on shutdown."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.models import usage_hourly
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.integration.ledger_fixtures import (
    GatewayProcess,
    chat,
    clean_env,
    decimal_json,
    generation_count,
    poll,
    settings_for,
    stream_chunks,
)
from tests.support.gateway import run_gateway, write_catalog


async def recorded(client: httpx.AsyncClient, url: str, generation_id: str) -> dict:
    """The generation from `GET /api/v1/generation`, once the writer has landed it."""
    found: list[httpx.Response] = []

    async def landed() -> bool:
        found[:] = [await client.get(f"{url}/api/v1/generation", params={"id": generation_id})]
        return found[0].status_code == 200

    await poll(landed, timeout_s=10, what="the generation via the API")
    return decimal_json(found[0].text)["data"]


async def test_serve_on_the_embedded_default_records_generations(tmp_path: Path) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=12, reasoning_tokens=3)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    checkout = tmp_path / "clean"
    checkout.mkdir()
    gateway = GatewayProcess(checkout, clean_env(GATEWAY_CATALOG=str(catalog)))
    seen: dict[str, dict] = {}
    try:
        await gateway.ready()
        async with httpx.AsyncClient(timeout=30) as client:
            plain = await client.post(f"{gateway.url}/v1/chat/completions", json=chat())
            streamed = await client.post(
                f"{gateway.url}/v1/chat/completions", json=chat(stream=True)
            )
            body = decimal_json(plain.text)
            chunks = stream_chunks(streamed.text)
            seen[body["id"]] = body["usage"]
            seen[chunks[0]["id"]] = next(c["usage"] for c in chunks if c.get("usage"))

            for generation_id, usage in seen.items():
                data = await recorded(client, gateway.url, generation_id)
                assert Decimal(data["total_cost"]) == Decimal(usage["cost"])
                assert data["native_tokens_prompt"] == usage["prompt_tokens"]
                assert data["native_tokens_completion"] == usage["completion_tokens"]
                assert data["native_tokens_reasoning"] == 3
            status = (await client.get(f"{gateway.url}/api/v1/ledger/status")).json()
            assert status["source"] == "in-process" and status["written_total"] == 2
        # uvicorn re-raises SIGTERM after a clean shutdown, so -SIGTERM is a graceful exit too.
        assert gateway.terminate() in (0, -signal.SIGTERM), gateway.output()
        assert "Application shutdown complete" in gateway.output()
    finally:
        if gateway.proc.poll() is None:
            gateway.terminate()
        await fleet.close()

    database = checkout / "var" / "gateway.sqlite3"
    assert database.exists()
    engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.connect() as conn:
            kinds = set(
                (await conn.scalars(text("SELECT DISTINCT typeof(cost) FROM generations"))).all()
            )
            rollup = (await conn.execute(select(usage_hourly))).mappings().all()
        assert kinds == {"text"}  # decimal text: SQLite never rounds it through REAL
        assert sum((r["cost"] for r in rollup), Decimal(0)) == sum(
            (Decimal(u["cost"]) for u in seen.values()), Decimal(0)
        )
        assert sum(r["requests"] for r in rollup) == 2
    finally:
        await engine.dispose()


async def test_graceful_shutdown_drains_the_in_process_queue(tmp_path: Path) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=4)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    url = f"sqlite+aiosqlite:///{tmp_path}/ledger.sqlite3"
    settings = settings_for(catalog, url, flush_interval_s=1.0, batch_size=1000)
    try:
        async with run_gateway(settings) as gateway, httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"{gateway.v1}/chat/completions", json=chat(f"{n}"))
                    for n in range(40)
                )
            )
            assert all(a.status_code == 200 for a in answers)
    finally:
        await fleet.close()
    engine = create_async_engine(url)
    try:  # no polling: shutdown itself wrote whatever was still queued
        assert await generation_count(engine) == 40
    finally:
        await engine.dispose()
