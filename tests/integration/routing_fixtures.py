"""Helpers for routing tests: gateways with short stats windows on real Redis, and a client."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    RedisSettings,
    RoutingSettings,
    Settings,
)
from tests.support.gateway import RunningGateway, free_port, run_gateway
from tests.support.polling import eventually

MODEL = "openai/gpt-oss-20b"
# Windows in seconds instead of minutes, so a test sees outages start and end.
FAST_ROUTING = {
    "stats_refresh_s": 0.1,
    "stats_flush_s": 0.05,
    "stats_buckets": 10,
    "stats_settle_s": 0.3,
    "uptime_windows_s": (2, 5, 10, 20, 30),
    "outage_window_s": 2.0,
    "latency_window_s": 2.0,
    "min_samples": 3,
    "breaker_failures": 3,
    "breaker_cooldown_s": 0.5,
    "breaker_max_cooldown_s": 1.0,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "first_token_timeout_s": 5.0,
    "total_timeout_s": 10.0,
}


def routing_settings(
    tmp_path: Path,
    catalog: Path,
    redis_url: str,
    redis_prefix: str,
    *,
    db_name: str = "gw",
    **routing: Any,
) -> Settings:
    return Settings(
        catalog=CatalogSettings(catalog=catalog),
        database=DatabaseSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/{db_name}.sqlite3"),
        redis=RedisSettings(redis_url=redis_url, redis_prefix=redis_prefix),
        routing=RoutingSettings(**{**FAST_ROUTING, **routing}),
    )


@asynccontextmanager
async def gateway_client(
    settings: Settings,
) -> AsyncIterator[tuple[RunningGateway, httpx.AsyncClient]]:
    async with run_gateway(settings) as gw, httpx.AsyncClient(base_url=gw.url, timeout=20) as c:
        yield gw, c


async def chat(
    client: httpx.AsyncClient,
    *,
    model: str = MODEL,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    return await client.post("/v1/chat/completions", json=payload, headers=headers or {})


async def served_by(client: httpx.AsyncClient, n: int, **body: Any) -> list[str]:
    """Send `n` requests in turn; the provider that served each (or "error:STATUS")."""
    providers = []
    for _ in range(n):
        r = await chat(client, **body)
        providers.append(r.json()["provider"] if r.status_code == 200 else f"error:{r.status_code}")
    return providers


# Checks do real I/O themselves, so rounds only yield to the loop between them.
until = functools.partial(eventually, interval_s=0)


async def drop_prefix(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@asynccontextmanager
async def gateway_process(
    tmp_path: Path, catalog: Path, redis_url: str, redis_prefix: str, **routing: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """`gateway serve` as its own process on the same Redis (another replica), and a client.

    Startup is awaited by polling /health without blocking the loop (the simulator runs in it).
    """
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "DATABASE_URL", "REDIS_"))
    }
    env.update(
        GATEWAY_CATALOG=str(catalog),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/process.sqlite3",
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
    )
    for name, value in {**FAST_ROUTING, **routing}.items():
        text = json.dumps(list(value)) if isinstance(value, tuple) else str(value)
        env[f"GATEWAY_ROUTING_{name.upper()}"] = text
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:

            async def healthy() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"gateway serve exited with {proc.returncode}")
                try:
                    return (await client.get("/health", timeout=1)).status_code == 200
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # the process is still starting: poll again
                    return False

            await until(healthy, timeout_s=30, what="gateway serve answering /health")
            yield client
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
