"""API keys end to end on Postgres and Redis: the admin API, the auth policy, `GET /api/v1/key`,
key scoping of generations, app attribution, per-key routing, and secrets kept out of logs,
the ledger and upstream requests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import generations
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.keys_fixtures import (
    admin_headers,
    bearer,
    chat,
    create_key,
    decimal_json,
    key_settings,
    poll,
    redis_client,
)
from tests.support.capture import capture_upstream
from tests.support.gateway import RunningGateway, run_gateway, write_catalog


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(
        {"alpha": Profile(completion_tokens=12), "beta": Profile(completion_tokens=12)}
    )
    try:
        yield fleet
    finally:
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
        tmp_path / "catalog.toml",
        {"alpha": fleet.url_for("alpha"), "beta": fleet.url_for("beta")},
        exacto="alpha",
    )
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    async with redis_client(redis_url, redis_prefix), run_gateway(settings) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        yield client


async def test_admin_api_creates_lists_changes_and_deletes_keys(client: httpx.AsyncClient):
    created = await client.post(
        "/api/v1/keys",
        json={
            "name": "ci",
            "limit": "2.5",
            "limit_reset": "monthly",
            "requests_per_minute": 100,
            "tokens_per_minute": 10000,
        },
        headers=admin_headers(),
    )
    assert created.status_code == 201, created.text
    body = decimal_json(created.text)
    secret, data = body["key"], body["data"]
    assert secret.startswith("sk-gw-") and data["label"] == secret[:12] + "..."
    assert data["limit"] == Decimal("2.5") and data["limit_remaining"] == Decimal("2.5")
    assert data["limit_reset"] == "monthly" and data["disabled"] is False
    assert data["rate_limit"] == {"requests": 100, "tokens": 10000, "interval": "1m"}
    key_id = data["id"]

    listed = await client.get("/api/v1/keys", headers=admin_headers())
    assert [k["id"] for k in listed.json()["data"]] == [key_id]
    assert (
        secret not in listed.text
        and secret not in (await client.get(f"/api/v1/keys/{key_id}", headers=admin_headers())).text
    )

    assert (
        await client.post("/v1/chat/completions", json=chat(), headers=bearer(secret))
    ).is_success
    patched = await client.patch(
        f"/api/v1/keys/{key_id}", json={"limit": None, "disabled": True}, headers=admin_headers()
    )
    assert patched.status_code == 200 and patched.json()["data"]["disabled"] is True
    assert patched.json()["data"]["limit"] is None
    refused = await client.post("/v1/chat/completions", json=chat(), headers=bearer(secret))
    assert refused.status_code == 401  # the replica that made the change knows at once

    deleted = await client.delete(f"/api/v1/keys/{key_id}", headers=admin_headers())
    assert deleted.json() == {"data": {"id": key_id, "deleted": True}}
    assert (await client.get(f"/api/v1/keys/{key_id}", headers=admin_headers())).status_code == 404
    assert (await client.get("/api/v1/keys", headers=admin_headers())).json() == {"data": []}

    bad = await client.post(
        "/api/v1/keys", json={"name": "x", "limit": -1}, headers=admin_headers()
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
    assert bad.json()["error"]["metadata"]["reason"] == "bad_request"


async def test_every_bad_key_gets_one_401_and_user_keys_cannot_administer(
    client: httpx.AsyncClient,
):
    _, secret = await create_key(client, name="user")
    _, disabled_secret = await create_key(client, name="off", disabled=True)
    answers = [
        await client.post("/v1/chat/completions", json=chat(), headers=headers)
        for headers in (
            {},
            {"Authorization": secret},  # no scheme
            {"Authorization": "Bearer"},
            {"Authorization": f"Basic {secret}"},
            bearer(secret[:-1] + ("A" if secret[-1] != "A" else "B")),
            bearer(disabled_secret),
        )
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.text for a in answers}) == 1  # nothing hints whether a key exists
    assert answers[0].json()["error"]["type"] == "authentication_error"

    as_user = await client.get("/api/v1/keys", headers=bearer(secret))
    assert as_user.status_code == 403
    assert (await client.get("/api/v1/keys")).status_code == 401
    assert (await client.get("/api/v1/keys", headers=bearer("nope"))).status_code == 401
    assert (await client.get("/api/v1/key")).status_code == 401
    assert (await client.get("/api/v1/key", headers=admin_headers())).status_code == 401


async def test_current_key_reports_limit_usage_and_rate_limit(client: httpx.AsyncClient):
    _, secret = await create_key(
        client, name="mine", limit="1", limit_reset="daily", requests_per_minute=50
    )
    answer = await client.post("/v1/chat/completions", json=chat(), headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-RateLimit-Limit"] == "50"
    assert answer.headers["X-RateLimit-Remaining"] == "49"
    cost = decimal_json(answer.text)["usage"]["cost"]
    assert cost > 0
    info = await client.get("/api/v1/key", headers=bearer(secret))
    assert info.status_code == 200
    data = decimal_json(info.text)["data"]
    assert data["label"] == secret[:12] + "..." and data["name"] == "mine"
    assert data["limit"] == 1 and data["limit_reset"] == "daily"
    assert data["usage"] == data["usage_daily"] == data["usage_weekly"] == cost
    assert data["usage_monthly"] == cost
    assert data["limit_remaining"] == 1 - cost
    assert data["rate_limit"] == {"requests": 50, "tokens": None, "interval": "1m"}
    assert secret not in info.text


async def test_a_key_never_reads_another_keys_generations(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    _, mine = await create_key(client, name="mine")
    _, theirs = await create_key(client, name="theirs")
    answer = await client.post("/v1/chat/completions", json=chat(), headers=bearer(mine))
    generation_id = answer.json()["id"]

    async def landed() -> bool:
        response = await client.get(
            "/api/v1/generation", params={"id": generation_id}, headers=bearer(mine)
        )
        return response.status_code == 200

    await poll(landed, what="the generation in the ledger")
    foreign = await client.get(
        "/api/v1/generation", params={"id": generation_id}, headers=bearer(theirs)
    )
    assert foreign.status_code == 404
    anonymous = await client.get("/api/v1/generation", params={"id": generation_id})
    assert anonymous.status_code == 401


async def test_app_attribution_and_key_reach_the_ledger(
    client: httpx.AsyncClient, engine: AsyncEngine
):
    key_id, secret = await create_key(client, name="app")
    headers = {**bearer(secret), "HTTP-Referer": "https://app.example", "X-Title": "Example App"}
    first = await client.post("/v1/chat/completions", json=chat(), headers=headers)
    headers = {**bearer(secret), "X-OpenRouter-Title": "Other App"}
    second = await client.post("/v1/chat/completions", json=chat(stream=True), headers=headers)
    ids = [first.json()["id"], second.headers["X-Generation-Id"]]

    async def rows() -> dict[str, tuple[str | None, str | None, str | None]]:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(
                    generations.c.id,
                    generations.c.api_key_id,
                    generations.c.app_referer,
                    generations.c.app_title,
                ).where(generations.c.id.in_(ids))
            )
            return {row.id: (row.api_key_id, row.app_referer, row.app_title) for row in found}

    async def both() -> bool:
        return len(await rows()) == 2

    await poll(both, what="both generations in the ledger")
    stored = await rows()
    assert stored[ids[0]] == (key_id, "https://app.example", "Example App")
    assert stored[ids[1]] == (key_id, None, "Other App")


async def test_a_key_pins_its_mode_and_provider_allowlist(client: httpx.AsyncClient):
    _, exacto = await create_key(client, name="exacto", mode="exacto", pin_mode=True)
    pinned = await client.post(
        "/v1/chat/completions",
        json=chat(model="openai/gpt-oss-20b:nitro"),
        headers=bearer(exacto),
    )
    assert pinned.headers["X-Route-Mode"] == "exacto" and pinned.json()["provider"] == "alpha"

    _, beta_only = await create_key(client, name="beta", provider={"only": ["beta"]})
    for _ in range(3):
        answer = await client.post("/v1/chat/completions", json=chat(), headers=bearer(beta_only))
        assert answer.json()["provider"] == "beta"
    widened = await client.post(
        "/v1/chat/completions",
        json=chat(provider={"only": ["alpha"]}),
        headers=bearer(beta_only),
    )
    assert widened.status_code == 400 and widened.json()["error"]["metadata"]["allowed"] == ["beta"]

    _, default_floor = await create_key(client, name="floor", mode="floor")
    assert (
        await client.post("/v1/chat/completions", json=chat(), headers=bearer(default_floor))
    ).headers["X-Route-Mode"] == "floor"
    suffixed = await client.post(
        "/v1/chat/completions",
        json=chat(model="openai/gpt-oss-20b:nitro"),
        headers=bearer(default_floor),
    )
    assert suffixed.headers["X-Route-Mode"] == "nitro"  # not pinned: the request may choose


async def test_key_secrets_never_reach_logs_the_ledger_or_upstreams(
    pg_database: str,
    engine: AsyncEngine,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    async with capture_upstream() as upstream:
        catalog = write_catalog(tmp_path / "catalog.toml", {"cap": upstream.url})
        settings = key_settings(
            catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix
        )
        async with (
            redis_client(redis_url, redis_prefix) as redis,
            run_gateway(settings) as running,
            httpx.AsyncClient(base_url=running.url, timeout=10) as client,
        ):
            key_id, secret = await create_key(client, name="secret", limit="1")
            ok = await client.post("/v1/chat/completions", json=chat(), headers=bearer(secret))
            again = await client.post(
                "/v1/chat/completions", json=chat("again"), headers=bearer(secret)
            )
            await client.post("/v1/chat/completions", json=chat(), headers=bearer(secret + "x"))
            await client.post("/v1/chat/completions", json={"bad": 1}, headers=bearer(secret))
            await client.get("/api/v1/keys", headers=bearer(secret))
            await client.patch(
                f"/api/v1/keys/{key_id}", json={"disabled": True}, headers=admin_headers()
            )
            await client.post("/v1/chat/completions", json=chat(), headers=bearer(secret))
            ids = [ok.json()["id"], again.json()["id"]]

            async def landed() -> bool:
                async with engine.connect() as conn:
                    found = await conn.execute(
                        select(generations.c.id).where(generations.c.id.in_(ids))
                    )
                    return len(found.all()) == 2

            await poll(landed, what="the generations in the ledger")
            redis_dump = [
                (k, await redis.dump(k)) async for k in redis.scan_iter(match=f"{redis_prefix}*")
            ]
    async with engine.connect() as conn:
        ledger = [
            str(row)
            for table in ("generations", "attempts", "usage_hourly")
            for row in (await conn.execute(text(f"SELECT * FROM {table}"))).all()
        ]
        key_rows = [str(row) for row in (await conn.execute(text("SELECT * FROM api_keys"))).all()]
    assert ledger and key_rows
    assert all(secret not in row for row in ledger + key_rows)
    assert secret not in caplog.text
    assert all(secret.encode() not in (k + (v or b"")) for k, v in redis_dump)
    assert upstream.headers and all(secret not in str(headers) for headers in upstream.headers)
    assert all(secret not in str(body) for body in upstream.bodies)


async def test_with_auth_off_requests_record_under_the_anonymous_key(
    fleet: Fleet,
    engine: AsyncEngine,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
):
    catalog = write_catalog(tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha")})
    settings = key_settings(
        catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix, auth="off"
    )
    async with (
        redis_client(redis_url, redis_prefix),
        run_gateway(settings) as running,
        httpx.AsyncClient(base_url=running.url, timeout=10) as client,
    ):
        answer = await client.post(
            "/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer unused"}
        )
        assert answer.status_code == 200
        info = (await client.get("/api/v1/key")).json()["data"]
        assert info["label"] == "anonymous" and info["limit"] is None

        async def anonymous_row() -> bool:
            async with engine.connect() as conn:
                found = await conn.scalar(
                    select(generations.c.api_key_id).where(generations.c.id == answer.json()["id"])
                )
            return found == "anonymous"

        await poll(anonymous_row, what="the anonymous generation in the ledger")
