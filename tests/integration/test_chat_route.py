"""The chat route as clients see it over HTTP: every error through the one mapping in
`gateway.errors`, with its headers; streams as SSE; a client that leaves a stream is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    LedgerSettings,
    RoutingSettings,
    ServerSettings,
    Settings,
)
from providers.simulator.profile import Failures, Profile
from providers.simulator.server import start_fleet
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually

ADMIN_TOKEN = "admin-token-for-chat-route-tests-0123"
MODEL = "openai/gpt-oss-20b"
MAX_BODY = 64 * 1024
PATHS = ["/v1/chat/completions", "/api/v1/chat/completions"]


@dataclass
class Route:
    client: httpx.AsyncClient
    secret: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    async def key(self, **spec: Any) -> str:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        created = await self.client.post("/api/v1/keys", json={"name": "t", **spec}, headers=admin)
        assert created.status_code == 201, created.text
        secret: str = created.json()["key"]
        return secret


def chat(provider: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "hi"}]
    return {"model": MODEL, "messages": messages, "provider": {"only": [provider]}, **extra}


@asynccontextmanager
async def serving(tmp_path: Path, breaker_failures: int = 1000) -> AsyncIterator[Route]:
    fleet = await start_fleet(
        {
            "ok": Profile(completion_tokens=5),
            "slow": Profile(completion_tokens=400, tokens_per_s=40),
            "down": Profile(failures=Failures(http_500=1.0)),
            "busy": Profile(failures=Failures(http_429=1.0), retry_after_s=3),
        }
    )
    try:
        database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
        await upgrade_to_head_async(database)
        providers = {name: fleet.url_for(name) for name in ("ok", "slow", "down", "busy")}
        settings = Settings(
            server=ServerSettings(
                auth="required", admin_token=ADMIN_TOKEN, max_body_bytes=MAX_BODY
            ),
            catalog=CatalogSettings(catalog=write_catalog(tmp_path / "c.toml", providers)),
            database=DatabaseSettings(database_url=database),
            routing=RoutingSettings(retries_per_endpoint=0, breaker_failures=breaker_failures),
            ledger=LedgerSettings(flush_interval_s=0.05),
        )
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=10) as client,
        ):
            probe = Route(client, "")
            yield Route(client, await probe.key())
    finally:
        await fleet.close()


@pytest.fixture
async def route(tmp_path: Path) -> AsyncIterator[Route]:
    async with serving(tmp_path) as route:
        yield route


def assert_error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    """The one envelope: `code` is the status, the string code is `metadata.reason`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status and set(error) >= {"code", "message", "type", "metadata"}
    assert error["metadata"]["reason"] == reason
    return error


@pytest.mark.parametrize("path", PATHS)
async def test_answers_with_generation_and_route_headers(route: Route, path: str) -> None:
    answer = await route.client.post(path, json=chat("ok"), headers=route.auth)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["id"] == answer.headers["x-generation-id"]
    assert answer.headers["x-route-mode"] == "balanced"
    assert answer.headers["x-route-attempts"] == "1"


async def test_stream_is_event_stream_without_caching(route: Route) -> None:
    body = chat("ok", stream=True)
    async with route.client.stream("POST", PATHS[0], json=body, headers=route.auth) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert answer.headers["cache-control"] == "no-cache"
        events = [line async for line in answer.aiter_lines() if line.startswith("data: ")]
    assert len(events) > 2 and events[-1] == "data: [DONE]"
    assert answer.headers["x-generation-id"] in events[0]


async def test_a_client_that_leaves_a_stream_is_recorded_as_cancelled(route: Route) -> None:
    body = chat("slow", stream=True)
    async with route.client.stream("POST", PATHS[0], json=body, headers=route.auth) as answer:
        generation_id = answer.headers["x-generation-id"]
        async for line in answer.aiter_lines():
            if line.startswith("data: "):
                break  # the first chunk arrived; now walk away mid-answer

    async def recorded() -> bool:
        found = await route.client.get(
            "/api/v1/generation", params={"id": generation_id}, headers=route.auth
        )
        return found.status_code == 200

    await eventually(recorded, timeout_s=10, what="the cancelled generation in the ledger")
    found = await route.client.get(
        "/api/v1/generation", params={"id": generation_id}, headers=route.auth
    )
    data = found.json()["data"]
    assert data["status"] == "cancelled" and data["cancelled"] is True and data["streamed"]


async def test_failed_generation_keeps_its_id_and_route_headers(route: Route) -> None:
    for stream in (False, True):
        failed = await route.client.post(
            PATHS[0], json=chat("down", stream=stream), headers=route.auth
        )
        error = assert_error(failed, 502, "upstream_error")
        assert error["metadata"] == {
            "reason": "upstream_error",
            "error_class": "UpstreamServerError",
        }
        assert failed.headers["x-generation-id"].startswith("gen-")
        assert failed.headers["x-route-mode"] == "balanced"
        assert failed.headers["x-route-attempts"] == "1"


async def test_upstream_429_passes_its_retry_after(route: Route) -> None:
    refused = await route.client.post(PATHS[0], json=chat("busy"), headers=route.auth)
    assert_error(refused, 429, "upstream_rate_limited")
    assert refused.headers["retry-after"] == "3"
    assert refused.headers["x-generation-id"].startswith("gen-")


async def test_key_rate_limit_is_429_with_retry_after(route: Route) -> None:
    limited = {"Authorization": f"Bearer {await route.key(requests_per_minute=1)}"}
    assert (await route.client.post(PATHS[0], json=chat("ok"), headers=limited)).status_code == 200
    refused = await route.client.post(PATHS[0], json=chat("ok"), headers=limited)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit"] == "1"


async def test_every_endpoint_out_of_rotation_is_503_with_retry_after(tmp_path: Path) -> None:
    async with serving(tmp_path, breaker_failures=1) as route:
        await route.client.post(PATHS[0], json=chat("down"), headers=route.auth)  # opens it
        refused = await route.client.post(PATHS[0], json=chat("down"), headers=route.auth)
    assert_error(refused, 503, "upstream_unavailable")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-generation-id"].startswith("gen-")
    assert refused.headers["x-route-attempts"] == "0"


async def test_no_endpoint_matching_the_preferences_is_404_saying_why(route: Route) -> None:
    unknown = await route.client.post(PATHS[0], json=chat("nobody"), headers=route.auth)
    assert "only" in assert_error(unknown, 404, "no_endpoint_matches")["message"]


@pytest.mark.parametrize("authorization", [None, "Bearer sk-gw-nope", "Basic abc"])
async def test_missing_or_unknown_key_is_401(route: Route, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    refused = await route.client.post(PATHS[0], json=chat("ok"), headers=headers)
    assert_error(refused, 401, "unauthorized")


async def test_malformed_bodies_are_400_naming_the_field(route: Route) -> None:
    broken = await route.client.post(PATHS[0], content=b"{broken", headers=route.auth)
    assert_error(broken, 400, "bad_request")
    wrong = await route.client.post(
        PATHS[0], json={"model": MODEL, "messages": "x"}, headers=route.auth
    )
    metadata = assert_error(wrong, 400, "bad_request")["metadata"]
    assert metadata == {"reason": "bad_request", "field": "messages"}


async def test_a_body_over_the_limit_is_413_announced_or_chunked(route: Route) -> None:
    big = b'{"pad": "' + b"x" * MAX_BODY + b'"}'

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    announced = await route.client.post(PATHS[0], content=big, headers=route.auth)
    assert_error(announced, 413, "payload_too_large")
    streamed = await route.client.post(PATHS[0], content=chunked(), headers=route.auth)
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "payload_too_large")


async def test_other_methods_are_405_and_options_lists_post(route: Route) -> None:
    wrong = await route.client.get(PATHS[0], headers=route.auth)
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST, OPTIONS"
    options = await route.client.options(PATHS[0])
    assert options.status_code == 204 and options.headers["allow"] == "OPTIONS, POST"
