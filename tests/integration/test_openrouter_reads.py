"""What OpenRouter clients read: session id and hashed user on the generation, OpenRouter's
`/api/v1/generation` names, `/api/v1/providers`, `/api/v1/credits`, `/api/v1/openapi.json`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    LedgerSettings,
    ServerSettings,
    Settings,
)
from tests.support.capture import CaptureUpstream, capture_upstream
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually

ADMIN = "admin-token-for-openrouter-reads-0123"
MODEL = "openai/gpt-oss-20b"


@dataclass
class Served:
    client: httpx.AsyncClient
    upstream: CaptureUpstream
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with capture_upstream() as upstream:
        database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
        await upgrade_to_head_async(database)
        catalog = write_catalog(tmp_path / "c.toml", {"capt": upstream.url, "spare": upstream.url})
        settings = Settings(
            server=ServerSettings(auth="required", admin_token=ADMIN),
            catalog=CatalogSettings(catalog=catalog),
            database=DatabaseSettings(database_url=database),
            ledger=LedgerSettings(flush_interval_s=0.05),
        )
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=10) as client,
        ):
            created = await client.post(
                "/api/v1/keys",
                json={"name": "reader", "limit": "5"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            assert created.status_code == 201, created.text
            yield Served(client, upstream, created.json()["key"])


async def generation(served: Served, gen_id: str) -> dict[str, Any]:
    async def found() -> bool:
        answer = await served.client.get(
            "/api/v1/generation", params={"id": gen_id}, headers=served.auth
        )
        return answer.status_code == 200

    await eventually(found, what="the generation in the ledger")
    answer = await served.client.get(
        "/api/v1/generation", params={"id": gen_id}, headers=served.auth
    )
    data: dict[str, Any] = answer.json()["data"]
    return data


def chat(**extra: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    return {**body, "provider": {"only": ["capt"]}, **extra}


async def test_session_header_and_hashed_user_reach_the_generation(served: Served) -> None:
    answer = await served.client.post(
        "/v1/chat/completions",
        json=chat(user="alice@example.com"),
        headers={**served.auth, "x-session-id": "sess-42"},
    )
    assert answer.status_code == 200, answer.text
    hashed = hashlib.sha256(b"alice@example.com").hexdigest()
    assert served.upstream.bodies[-1]["user"] == hashed  # the raw identifier never leaves
    data = await generation(served, answer.headers["x-generation-id"])
    assert data["session_id"] == "sess-42"
    assert data["external_user"] == hashed
    assert data["upstream_id"] == "up-1"  # the capture upstream's own id
    (response,) = data["provider_responses"]
    assert response["id"] == "up-1"
    assert response["endpoint_id"] == f"{MODEL}@capt"
    assert response["model_permaslug"] == MODEL
    assert response["provider_name"] == "capt"
    assert response["status"] == 200 and response["is_byok"] is False
    assert isinstance(response["latency"], float)


async def test_body_session_id_wins_and_is_bounded(served: Served) -> None:
    answer = await served.client.post(
        "/v1/chat/completions",
        json=chat(session_id="from-body"),
        headers={**served.auth, "x-session-id": "from-header"},
    )
    data = await generation(served, answer.headers["x-generation-id"])
    assert data["session_id"] == "from-body" and data["external_user"] is None
    too_long = await served.client.post(
        "/v1/chat/completions", json=chat(), headers={**served.auth, "x-session-id": "x" * 257}
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["metadata"]["field"] == "session_id"


async def test_providers_lists_the_catalog(served: Served) -> None:
    answer = await served.client.get("/api/v1/providers", headers=served.auth)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert [p["slug"] for p in data] == ["capt", "spare"]
    assert set(data[0]) >= {"name", "slug", "privacy_policy_url", "terms_of_service_url"}
    assert data[0]["models"] == [MODEL] and data[0]["enabled_endpoints"] == 1


async def test_credits_are_the_keys_limit_and_usage(served: Served) -> None:
    before = (await served.client.get("/api/v1/credits", headers=served.auth)).json()["data"]
    assert before["total_credits"] == 5 and before["total_usage"] == 0
    answer = await served.client.post("/v1/chat/completions", json=chat(), headers=served.auth)
    cost = Decimal(str(answer.json()["usage"]["cost"]))
    assert cost > 0
    raw = (await served.client.get("/api/v1/credits", headers=served.auth)).content
    after = json.loads(raw, parse_float=Decimal)["data"]
    assert after["total_usage"] == cost
    assert after["limit_remaining"] == Decimal(5) - cost
    unauthorized = await served.client.get("/api/v1/credits")
    assert unauthorized.status_code == 401


async def test_openapi_document_describes_every_route_and_the_error_envelope(
    served: Served,
) -> None:
    answer = await served.client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/v1/chat/completions",
        "/api/v1/chat/completions",
        "/api/v1/generation",
        "/api/v1/providers",
        "/api/v1/credits",
        "/api/v1/key",
        "/api/v1/models",
    ):
        assert path in paths, path
    chat_post = paths["/api/v1/chat/completions"]["post"]
    request_schema = chat_post["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    schemas = document["components"]["schemas"]
    assert {"ErrorResponse", "ProviderPreferences", "ChatCompletionRequest"} <= set(schemas)
    for item in paths.values():
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
