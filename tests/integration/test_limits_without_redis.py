"""Limits without Redis are honest: a restart rebuilds each key's spend for its current period
from the ledger, and `gateway serve --workers 2` without REDIS_URL refuses to start while any
key has a limit (each worker would count it alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.integration.keys_fixtures import (
    admin_headers,
    bearer,
    chat,
    create_key,
    decimal_json,
    key_settings,
)
from tests.support.gateway import free_port, run_gateway, write_catalog


async def test_a_restart_rebuilds_each_keys_spend_from_the_ledger(
    engine: AsyncEngine, pg_database: str, tmp_path: Path
) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=20)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    settings = key_settings(catalog, pg_database, redis_url=None, redis_prefix="")
    try:
        async with (
            run_gateway(settings) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        ):
            _, secret = await create_key(client, name="daily", limit="0.001", limit_reset="daily")
            for n in range(5):
                answer = await client.post(
                    "/v1/chat/completions",
                    json=chat(f"q{n}", max_tokens=20),
                    headers=bearer(secret),
                )
                assert answer.status_code == 200
            before = decimal_json((await client.get("/api/v1/key", headers=bearer(secret))).text)
        spent = before["data"]["usage_daily"]
        assert spent > 0
        settings = key_settings(catalog, pg_database, redis_url=None, redis_prefix="")
        async with (
            run_gateway(settings) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        ):
            after = decimal_json((await client.get("/api/v1/key", headers=bearer(secret))).text)
            data = after["data"]
            assert (data["usage"], data["usage_daily"]) == (before["data"]["usage"], spent)
            assert data["limit_remaining"] == Decimal("0.001") - spent
    finally:
        await fleet.close()


def _env(database_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "DATABASE_URL", "REDIS_"))
    }
    return {**env, "DATABASE_URL": database_url}


def _gateway(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=60,
    )


def test_serve_with_workers_and_no_redis_refuses_while_a_key_has_a_limit(tmp_path: Path) -> None:
    env = _env(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    assert _gateway(env, tmp_path, "migrate").returncode == 0
    created = _gateway(env, tmp_path, "keys", "create", "--name", "capped", "--limit-usd", "5")
    assert created.returncode == 0, created.stderr.decode()
    done = _gateway(env, tmp_path, "serve", "--workers", "2", "--port", str(free_port()))
    stderr = done.stderr.decode().strip()
    assert done.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("gateway serve:")]
    assert len(lines) == 1 and "REDIS_URL" in lines[0] and "capped" in lines[0], stderr


async def test_workers_without_redis_refuse_to_create_a_limited_key(
    engine: AsyncEngine, pg_database: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": "http://127.0.0.1:9/v1"})
    settings = key_settings(catalog, pg_database, redis_url=None, redis_prefix="")
    settings.server.workers = 2  # as `gateway serve --workers 2` tells each worker
    async with (
        run_gateway(settings) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
    ):
        refused = await client.post(
            "/api/v1/keys", json={"name": "capped", "limit": "5"}, headers=admin_headers()
        )
        assert refused.status_code == 400 and "REDIS_URL" in refused.json()["error"]["message"]
        key_id, _ = await create_key(client, name="free")  # no limit: nothing to share
        patched = await client.patch(
            f"/api/v1/keys/{key_id}", json={"requests_per_minute": 10}, headers=admin_headers()
        )
        assert patched.status_code == 400
