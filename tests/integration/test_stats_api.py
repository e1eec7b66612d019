"""The stats API against a gateway that served simulated traffic: its figures are the ledger's
(held against raw SQL on the generations and attempts tables), on Postgres and SQLite."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.stats import queries, views
from providers.simulator.server import start_fleet
from tests.integration.keys_fixtures import (
    admin_headers,
    bearer,
    create_key,
    key_settings,
    migrate,
)
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually
from tests.support.stats_traffic import (
    APPS,
    EXACTO,
    MODEL,
    PROFILES,
    ledger_by_provider,
    ledger_errors,
    per_token,
    send_traffic,
)

REQUESTS = 24


async def _get(client: httpx.AsyncClient, path: str, **query: Any) -> dict[str, Any]:
    response = await client.get(path, params=query, headers=admin_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_stats_api_matches_the_ledger(
    backend: str, tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    database_url = pg_database
    if backend == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
    else:
        await migrate(database_url)
    fleet = await start_fleet(dict(PROFILES))
    catalog = write_catalog(
        tmp_path / "catalog.toml", {p: fleet.url_for(p) for p in PROFILES}, exacto=EXACTO
    )
    settings = key_settings(
        catalog, database_url, redis_url=redis_url, redis_prefix=redis_prefix, auth="off"
    )
    engine = create_async_engine(database_url)
    try:
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=20) as client,
        ):
            sent = await send_traffic(client, REQUESTS)
            assert sent.statuses[200] > REQUESTS // 2 and sent.total == REQUESTS

            async def all_counted() -> bool:
                body = await _get(client, "/api/v1/stats/usage", group_by="provider")
                return sum(row["requests"] for row in body["data"]) == REQUESTS

            await eventually(all_counted, timeout_s=15, what="every generation in the rollups")
            ledger = await ledger_by_provider(engine)

            usage = await _get(client, "/api/v1/stats/usage", group_by="provider", bucket="day")
            by_provider = {row["provider"]: row for row in usage["data"]}
            for group_by in ("model", "provider", "key", "app"):  # Postgres shapes JSON itself
                for bucket in ("hour", "day"):
                    body = await _get(
                        client, "/api/v1/stats/usage", group_by=group_by, bucket=bucket
                    )
                    period = queries.Period(
                        datetime.fromisoformat(body["period"]["from"]),
                        datetime.fromisoformat(body["period"]["to"]),
                    )
                    rows = await queries.usage(engine, period, bucket, group_by, None)
                    assert body["data"] == [views.usage_row(r, group_by) for r in rows]
                    assert body["data"] and body["bucket"] == bucket
            assert set(by_provider) == set(ledger)
            for provider, row in by_provider.items():
                assert row["requests"] == ledger[provider]["requests"]
                assert Decimal(row["cost"]) == ledger[provider]["cost"]  # exact
                assert row["cached_tokens"] == ledger[provider]["cached_tokens"]
            assert ledger["alpha"]["cached_tokens"] > 0  # the prompt cache was exercised

            async def live() -> bool:  # the routing snapshot is rebuilt every second
                body = await _get(client, "/api/v1/stats/endpoints", model=MODEL)
                return body["data"][0]["uptime"]["5m"] is not None

            await eventually(live, timeout_s=10, what="live uptime in the endpoints stats")
            endpoints = await _get(client, "/api/v1/stats/endpoints", model=MODEL)
            rows = {row["provider"]: row for row in endpoints["data"]}
            assert set(rows) == set(PROFILES)
            served = {p: v for p, v in ledger.items() if p}
            total = sum(v["requests"] for v in served.values())
            for provider, row in rows.items():
                paid = ledger.get(provider)
                assert row["requests"] == (paid["requests"] if paid else 0)
                if paid:
                    assert row["request_share"] == round(paid["requests"] / total, 4)
                    price = row["effective_price"]
                    assert price["prompt"] == per_token(paid["prompt_cost"], paid["prompt_tokens"])
                    assert price["completion"] == per_token(
                        paid["completion_cost"], paid["completion_tokens"]
                    )
                assert set(row["uptime"]) == {"5m", "30m", "1d", "30d"}
                assert row["breaker"] in {"closed", "open", "half_open"}
                assert row["status"]["state"] == "enabled"
            # alpha's cache reads make its paid prompt price lower than its list price
            assert Decimal(rows["alpha"]["effective_price"]["prompt"]) < Decimal(
                rows["alpha"]["price"]["prompt"]
            )
            errors = await ledger_errors(engine)
            for provider, row in rows.items():
                expected = {cls: n for (p, cls), n in errors.items() if p == provider}
                assert row["errors"] == expected
            assert rows["gamma"]["errors"]  # the down provider's failures are counted
            assert rows["alpha"]["uptime"]["5m"] == 100.0

            apps = await _get(client, "/api/v1/stats/apps")
            assert {row["app"] for row in apps["data"]} == set(APPS)
            assert sum(row["requests"] for row in apps["data"]) == REQUESTS

            history = await _get(client, "/api/v1/stats/history")
            assert {row["provider"] for row in history["data"]} >= {"alpha", "gamma"}
            gamma = [row for row in history["data"] if row["provider"] == "gamma"]
            assert all(row["uptime"] == 0.0 for row in gamma)

            failures = await _get(client, "/api/v1/stats/failures", limit=5)
            assert 0 < len(failures["data"]) <= 5
            assert all(row["error_class"] for row in failures["data"])

            generation_id = sent.generation_ids[0]
            one = await _get(client, "/api/v1/stats/generation", id=generation_id)
            assert one["data"]["id"] == generation_id
            assert one["data"]["provider_responses"]
    finally:
        await engine.dispose()
        await fleet.close()


async def test_a_key_sees_only_its_own_traffic_and_bad_input_is_a_400(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    await migrate(pg_database)
    fleet = await start_fleet({"alpha": PROFILES["alpha"]})
    catalog = write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})
    settings = key_settings(
        catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix, auth="off"
    )
    try:
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=20) as client,
        ):
            _, secret = await create_key(client, name="scoped")
            await send_traffic(client, 3)
            await send_traffic(client, 2, headers=bearer(secret))

            async def counted() -> bool:
                body = await _get(client, "/api/v1/stats/usage", group_by="key")
                return sum(row["requests"] for row in body["data"]) == 5

            await eventually(counted, timeout_s=15, what="every generation in the rollups")
            mine = await client.get(
                "/api/v1/stats/usage", params={"group_by": "model"}, headers=bearer(secret)
            )
            assert mine.status_code == 200, mine.text
            assert sum(row["requests"] for row in mine.json()["data"]) == 2
            endpoints = await client.get("/api/v1/stats/endpoints", headers=bearer(secret))
            assert endpoints.json()["data"][0]["requests"] == 2
            assert endpoints.json()["scope"] == "key"
            forbidden = await client.get("/api/v1/stats/failures", headers=bearer(secret))
            assert forbidden.status_code == 403
            anonymous = await client.get("/api/v1/stats/usage")
            assert anonymous.status_code in (401, 403)
            assert "error" in anonymous.json()

            for query in (
                {"bucket": "minute"},
                {"group_by": "color"},
                {"from": "yesterday"},
                {"from": "2026-01-02", "to": "2026-01-01"},
                {"from": "2020-01-01", "to": "2026-01-01", "bucket": "day"},
                {"from": "2026-01-01", "to": "2026-03-01", "bucket": "hour"},
            ):
                bad = await client.get("/api/v1/stats/usage", params=query, headers=admin_headers())
                assert bad.status_code == 400, (query, bad.text)
                assert bad.json()["error"]["metadata"]["parameter"]
            unknown = await client.get(
                "/api/v1/stats/endpoints", params={"model": "x/y"}, headers=admin_headers()
            )
            assert unknown.status_code == 404
    finally:
        await fleet.close()
