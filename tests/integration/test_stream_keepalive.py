"""Streams that wait for their first token: the 200 is committed and `: processing` comments
flow every `GATEWAY_STREAM_KEEPALIVE_S`; fallback still happens before content; a failure
after the headers is an error event and `[DONE]`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    RoutingSettings,
    ServerSettings,
    Settings,
)
from providers.simulator.profile import Failures, Profile
from providers.simulator.server import start_fleet
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually

MODEL = "openai/gpt-oss-20b"
FIRST_TOKEN_MS = 4000


@asynccontextmanager
async def serving(
    tmp_path: Path, profiles: dict[str, Profile], keepalive_s: float, first_token_s: float = 60
) -> AsyncIterator[httpx.AsyncClient]:
    fleet = await start_fleet(profiles)
    try:
        database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
        await upgrade_to_head_async(database)
        endpoints = {name: fleet.url_for(name) for name in profiles}
        settings = Settings(
            server=ServerSettings(auth="off", stream_keepalive_s=keepalive_s),
            catalog=CatalogSettings(catalog=write_catalog(tmp_path / "c.toml", endpoints)),
            database=DatabaseSettings(database_url=database),
            routing=RoutingSettings(retries_per_endpoint=0, first_token_timeout_s=first_token_s),
        )
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=30) as client,
        ):
            yield client
    finally:
        await fleet.close()


def body(**provider: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "provider": provider,
    }


async def read(
    client: httpx.AsyncClient, payload: dict[str, Any]
) -> tuple[httpx.Response, list[tuple[float, str]]]:
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    async with client.stream("POST", "/v1/chat/completions", json=payload) as answer:
        async for line in answer.aiter_lines():
            if line:
                lines.append((time.monotonic() - started, line))
    return answer, lines


async def test_slow_first_token_gets_comments_within_the_interval_then_the_answer(
    tmp_path: Path,
) -> None:
    profiles = {"slow": Profile(ttft_ms=FIRST_TOKEN_MS, completion_tokens=5)}
    async with serving(tmp_path, profiles, keepalive_s=2.0) as client:
        answer, lines = await read(client, body())
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    first_at, first = lines[0]
    assert first == ": processing"
    assert first_at < 2.0 + 1.5  # the interval, with slack for a loaded machine
    data = [line for _, line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    chunks = [msgspec.json.decode(line[6:]) for line in data[:-1]]
    assert all("error" not in c for c in chunks)
    assert all(c["id"] == answer.headers["x-generation-id"] for c in chunks)
    content = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert content
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    comments = [at for at, line in lines if line == ": processing"]
    first_data = next(at for at, line in lines if line.startswith("data: "))
    assert comments and max(comments) < first_data  # comments only before the content


async def test_fallback_still_happens_after_comments(tmp_path: Path) -> None:
    profiles = {
        "hangs": Profile(failures=Failures(hang=1.0), hang_max_s=30),
        "works": Profile(completion_tokens=3),
    }
    async with serving(tmp_path, profiles, keepalive_s=0.3, first_token_s=1.2) as client:
        answer, lines = await read(client, body(order=["hangs", "works"]))
        assert answer.status_code == 200
        assert lines[0][1] == ": processing"
        data = [msgspec.json.decode(line[6:]) for _, line in lines if line.startswith("data: {")]
        assert data and all(c["provider"] == "works" for c in data)
        assert all("error" not in c for c in data)
        assert lines[-1][1] == "data: [DONE]"
        # One generation in the ledger, charged at the endpoint that served, both attempts in it.
        generation_id = answer.headers["x-generation-id"]

        async def stored() -> bool:
            found = await client.get("/api/v1/generation", params={"id": generation_id})
            return found.status_code == 200

        await eventually(stored, 10, what="the generation in the ledger")
        found = await client.get("/api/v1/generation", params={"id": generation_id})
        record = found.json()["data"]
        assert record["provider_name"] == "works" and record["total_cost"] > 0
        tried = [(r["provider_name"], r["outcome"]) for r in record["provider_responses"]]
        assert tried == [("hangs", "timeout"), ("works", "ok")]


async def test_every_upstream_failing_after_the_comment_ends_with_error_event_and_done(
    tmp_path: Path,
) -> None:
    hang = Profile(failures=Failures(hang=1.0), hang_max_s=30)
    profiles = {"one": hang, "two": hang}
    async with serving(tmp_path, profiles, keepalive_s=0.3, first_token_s=0.8) as client:
        answer, lines = await read(client, body())
    assert answer.status_code == 200
    assert lines[0][1] == ": processing"
    data = [line for _, line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    assert len(data) == 2
    event = msgspec.json.decode(data[0][6:])
    assert event["id"] == answer.headers["x-generation-id"]
    assert event["choices"][0]["finish_reason"] == "error"
    error = event["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["metadata"]["error_type"]


async def test_a_fast_stream_sends_no_comment_and_keeps_its_route_headers(tmp_path: Path) -> None:
    async with serving(tmp_path, {"fast": Profile(completion_tokens=3)}, keepalive_s=2.0) as client:
        answer, lines = await read(client, body())
    assert answer.status_code == 200
    assert answer.headers["x-route-mode"] == "balanced"
    assert not [line for _, line in lines if line.startswith(":")]


async def test_a_failure_before_the_interval_keeps_its_status(tmp_path: Path) -> None:
    profiles = {"down": Profile(down=True)}
    async with serving(tmp_path, profiles, keepalive_s=5.0) as client:
        answer = await client.post("/v1/chat/completions", json=body())
    assert answer.status_code in (502, 503), answer.text
    assert answer.headers["content-type"] == "application/json"
