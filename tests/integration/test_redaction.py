"""An upstream that echoes its credential in an error: the secret reaches no response, no
ledger row and no log line (non-streamed and streamed; hosted-style and llama.cpp endpoints)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.models import attempts, generations
from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    LedgerSettings,
    RedisSettings,
    RoutingSettings,
    Settings,
)
from providers.catalog import Endpoint, Price, Secret
from providers.errors import UpstreamError, UpstreamProtocolError
from providers.http1 import HttpClient
from providers.httpx_transport import HttpxTransport
from providers.openai_compatible import OpenAICompatibleProvider
from providers.provider import Timeouts, UpstreamCall
from providers.transport import UpstreamTransport
from tests.conftest import PG_ADMIN_DSN, REDIS_URL
from tests.integration.ledger_fixtures import drop_redis_keys
from tests.support.gateway import run_gateway
from tests.support.polling import eventually

SECRET = "sk-proj-Zq7RbT2sEcReT0nLyF0rTh3sT4ndN0b0dyEls3"
MODEL = "openai/gpt-oss-20b"


async def _echoing_upstream(mid_stream: bool) -> tuple[web.AppRunner, str]:
    """401 whose message repeats the Authorization header; streamed: an error event that does."""

    async def chat(request: web.Request) -> web.StreamResponse:
        echoed = f"Incorrect API key provided: {request.headers.get('Authorization')}"
        body = await request.json()
        if not body.get("stream"):
            return web.json_response({"error": {"message": echoed, "code": 401}}, status=401)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if mid_stream:
            delta = {"id": "x", "choices": [{"index": 0, "delta": {"content": "hel"}}]}
            await response.write(f"data: {json.dumps(delta)}\n\n".encode())
        error = {"error": {"message": echoed + f" (key={SECRET})", "code": 500}}
        await response.write(f"data: {json.dumps(error)}\n\n".encode())
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/v1"


def _catalog(path: Path, base_url: str, kind: str) -> Path:
    path.write_text(
        f'[models."{MODEL}"]\nname = "m"\ncontext_length = 131072\n\n'
        f'[[endpoints]]\nmodel = "{MODEL}"\nprovider = "echo"\nkind = "{kind}"\n'
        f'base_url = "{base_url}"\nupstream_model = "m"\ncontext_length = 131072\n'
        f'api_key_env = "ECHO_TEST_KEY"\nprice = {{ prompt = "1", completion = "1" }}\n'
    )
    return path


@pytest.fixture(params=["openai", "llamacpp"])
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(params=["sqlite", "postgres+redis"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, RedisSettings]]:
    """The embedded default, or a Postgres database of the test's own and Redis."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3", RedisSettings()
        return
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    prefix = f"gwtest:{uuid.uuid4().hex[:12]}:"
    database = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{database}/{name}", RedisSettings(redis_url=REDIS_URL, redis_prefix=prefix)
    finally:
        await drop_redis_keys(REDIS_URL, prefix)
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.mark.parametrize("stream", [False, True, "mid"])
async def test_an_echoed_key_reaches_no_response_row_or_log(
    tmp_path: Path,
    kind: str,
    stream: bool | str,
    storage: tuple[str, RedisSettings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ECHO_TEST_KEY", SECRET)
    runner, url = await _echoing_upstream(mid_stream=stream == "mid")
    database, redis = storage
    await upgrade_to_head_async(database)
    settings = Settings(
        catalog=CatalogSettings(catalog=_catalog(tmp_path / "c.toml", url, kind)),
        database=DatabaseSettings(database_url=database),
        redis=redis,
        routing=RoutingSettings(retries_per_endpoint=0),
        ledger=LedgerSettings(flush_interval_s=0.05, writer="worker"),
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": bool(stream)}
    caplog.set_level(logging.DEBUG)
    try:
        async with run_gateway(settings) as gw, httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{gw.v1}/chat/completions", json=body)
            generation_id = answer.headers["x-generation-id"]
            engine = create_async_engine(database)
            try:

                async def recorded() -> bool:
                    async with engine.connect() as conn:
                        found = await conn.scalar(
                            select(generations.c.id).where(generations.c.id == generation_id)
                        )
                    return found is not None

                await eventually(recorded, timeout_s=10, what="the failed generation recorded")
                async with engine.connect() as conn:
                    rows = [dict(r) for r in (await conn.execute(select(generations))).mappings()]
                    rows += [dict(r) for r in (await conn.execute(select(attempts))).mappings()]
            finally:
                await engine.dispose()
    finally:
        await runner.cleanup()
    seen = answer.text + str(answer.headers)
    assert "redacted" in seen  # the error was passed on, minus the key
    assert SECRET not in seen and "Zq7RbT2s" not in seen
    assert any("redacted" in str(row.get("error_message")) for row in rows)
    assert SECRET not in str(rows)
    logged = " ".join(f"{r.getMessage()} {r.__dict__} {r.exc_text}" for r in caplog.records)
    assert SECRET not in logged


async def _malformed_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A broken upstream: its answer's head repeats the request's Authorization header on a
    line no HTTP parser accepts (a space in the field name), so the parser's error quotes it."""
    head = await reader.readuntil(b"\r\n\r\n")
    auth = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"authorization:"))
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nEcho " + auth + b"\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("transport", ["http1", "httpx"])
async def test_a_transport_error_quoting_the_key_is_redacted(transport: str) -> None:
    server = await asyncio.start_server(_malformed_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream: UpstreamTransport = HttpxTransport() if transport == "httpx" else HttpClient()
    endpoint = Endpoint(
        model=MODEL,
        provider="echo",
        base_url=f"http://127.0.0.1:{port}/v1",
        upstream_model="gpt-oss",
        context_length=1000,
        price=Price(prompt=Decimal(0), completion=Decimal(0)),
    )
    call = UpstreamCall(endpoint, {"messages": []}, Secret(SECRET), Timeouts(2, 2, 5, 2))
    adapter = OpenAICompatibleProvider(upstream)
    try:
        with pytest.raises(UpstreamError) as failed:
            await adapter.complete(call)
        with pytest.raises(UpstreamError) as failed_stream:
            async for _ in adapter.stream(call):
                pass
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()
    for error in (failed.value, failed_stream.value):
        assert isinstance(error, UpstreamProtocolError), error
        assert SECRET not in error.message and SECRET[:12] not in error.message
        assert SECRET not in str(error)
