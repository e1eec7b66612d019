"""Memory does not grow with what clients send: 150 requests with 400 KB session ids keep the
serving process's RSS within 20 MB of where it started (the affinity memory keeps digests)."""

from __future__ import annotations

import gc
import os
import random
import string
from pathlib import Path

import httpx

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import CatalogSettings, DatabaseSettings, LedgerSettings, Settings
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.support.gateway import run_gateway, write_catalog

REQUESTS = 150
SESSION_BYTES = 400 * 1024
RSS_BOUND = 20 * 1024 * 1024


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_huge_session_ids_do_not_grow_memory(tmp_path: Path) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=2)})
    database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
    await upgrade_to_head_async(database)
    settings = Settings(
        catalog=CatalogSettings(
            catalog=write_catalog(tmp_path / "c.toml", {"a": fleet.url_for("a")})
        ),
        database=DatabaseSettings(database_url=database),
        ledger=LedgerSettings(flush_interval_s=0.05),
    )
    rng = random.Random(13)
    prefix = "".join(rng.choices(string.ascii_letters, k=SESSION_BYTES))
    try:
        async with run_gateway(settings) as gw, httpx.AsyncClient(timeout=30) as client:

            async def send(n: int) -> None:
                body = {
                    "model": "openai/gpt-oss-20b",
                    "messages": [{"role": "user", "content": "hi"}],
                    # every one distinct, 400 KB (a `session_id` that long is a 400: at most 256)
                    "prompt_cache_key": f"{n:06d}{prefix}",
                }
                answer = await client.post(f"{gw.v1}/chat/completions", json=body)
                assert answer.status_code == 200, answer.text[:300]

            too_long = {
                "model": "openai/gpt-oss-20b",
                "messages": [{"role": "user", "content": "hi"}],
                "session_id": prefix,
            }
            refused = await client.post(f"{gw.v1}/chat/completions", json=too_long)
            assert refused.status_code == 400
            assert refused.json()["error"]["metadata"]["field"] == "session_id"
            for n in range(5):  # warm up: first-use allocations are not growth
                await send(-n - 1)
            gc.collect()
            start = rss_bytes()
            for n in range(REQUESTS):
                await send(n)
            gc.collect()
            grown = rss_bytes() - start
            affinity = gw.resources.routing.affinity if gw.resources.routing else None
    finally:
        await fleet.close()
    assert affinity is not None and len(affinity) >= REQUESTS  # every session remembered...
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MB"  # ...without its 400 KB
