"""A misbehaving upstream's numbers and sizes are bounded end to end: `Retry-After: inf` or a
decade is capped (no bare 500), an oversized non-streamed answer fails the attempt cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    LedgerSettings,
    RoutingSettings,
    Settings,
)
from providers.openai_compatible import MAX_RESPONSE_BYTES, MAX_RETRY_AFTER_S
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

BODY = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]}
Answer = Callable[[web.Request], web.Response]


@asynccontextmanager
async def gateway_before(answer: Answer, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async def chat(request: web.Request) -> web.Response:
        return answer(request)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
    await upgrade_to_head_async(database)
    catalog = write_catalog(tmp_path / "c.toml", {"a": f"http://127.0.0.1:{port}/v1"})
    settings = Settings(
        catalog=CatalogSettings(catalog=catalog),
        database=DatabaseSettings(database_url=database),
        routing=RoutingSettings(retries_per_endpoint=0, max_attempts=1),
        ledger=LedgerSettings(flush_interval_s=0.05),
    )
    try:
        async with run_gateway(settings) as gw:
            yield gw
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("retry_after", ["inf", "1e12", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_an_unbounded_retry_after_is_capped(tmp_path: Path, retry_after: str) -> None:
    def limited(_: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": retry_after}
        )

    async with (
        gateway_before(limited, tmp_path) as gw,
        httpx.AsyncClient(timeout=30) as client,
    ):
        answer = await client.post(f"{gw.v1}/chat/completions", json=BODY)
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"]["code"] == 429
        assert 1 <= int(answer.headers["retry-after"]) <= MAX_RETRY_AFTER_S
        routing = gw.resources.routing
        assert routing is not None
        # The breaker (shared with every replica through Redis in production) opens for the
        # capped pause, not for years.
        state = routing.live.breakers.get("openai/gpt-oss-20b@a")
        assert state is not None and state.open
        assert state.until - state.changed_at <= MAX_RETRY_AFTER_S


async def test_an_oversized_answer_fails_the_attempt_cleanly(tmp_path: Path) -> None:
    filler = "x" * (MAX_RESPONSE_BYTES + 1024)

    def huge(_: web.Request) -> web.Response:
        return web.json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": filler}}]}
        )

    async with gateway_before(huge, tmp_path) as gw, httpx.AsyncClient(timeout=60) as client:
        answer = await client.post(f"{gw.v1}/chat/completions", json=BODY)
    assert answer.status_code == 502, answer.text[:500]
    error = answer.json()["error"]
    assert "larger than" in error["message"]
    assert error["metadata"]["error_class"] == "UpstreamProtocolError"
