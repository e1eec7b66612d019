"""OpenRouter-shaped request bodies over HTTP: every documented `provider` field, both `sort`
forms, numbers as strings and `null`s are answered (200), what has no effect here is listed
in the routing explanation as ignored, and none of it reaches the upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import CatalogSettings, DatabaseSettings, ServerSettings, Settings
from tests.support.capture import CaptureUpstream, capture_upstream
from tests.support.gateway import run_gateway, write_catalog

MODEL = "openai/gpt-oss-20b"
GATEWAY_ONLY = {"provider", "route", "transforms", "models", "preset", "plugins", "debug"}

EVERY_FIELD_AS_STRINGS = {
    "order": ["a", "b"],
    "only": ["a", "b"],
    "ignore": ["nobody"],
    "allow_fallbacks": True,
    "require_parameters": True,
    "data_collection": "deny",
    "zdr": False,
    "enforce_distillable_text": True,
    "quantizations": ["mxfp4", "fp8"],
    "sort": {"by": "price", "partition": "model"},
    "max_price": {
        "prompt": "1000",
        "completion": "1000",
        "request": "0.5",
        "image": "1",
        "audio": "1",
    },
    "preferred_min_throughput": {"p50": "1", "p75": "1", "p90": None, "p99": "0.5"},
    "preferred_max_latency": {"p50": "60", "p75": 60, "p90": "60", "p99": None},
}
EVERY_FIELD_NULL = {name: None for name in EVERY_FIELD_AS_STRINGS}

# (provider object, top-level extras, fields the explanation must list as ignored)
CORPUS: list[tuple[dict[str, Any] | None, dict[str, Any], set[str]]] = [
    (
        EVERY_FIELD_AS_STRINGS,
        {},
        {"enforce_distillable_text", "max_price.image", "max_price.audio"},
    ),
    (EVERY_FIELD_NULL, {}, set()),
    ({"order": ["b"], "allow_fallbacks": False}, {}, set()),
    ({"only": "a", "ignore": "b"}, {}, set()),
    ({"sort": "price"}, {}, set()),
    ({"sort": "throughput"}, {}, set()),
    ({"sort": "latency"}, {}, set()),
    ({"sort": "exacto"}, {}, set()),
    ({"sort": {"by": "throughput", "partition": "none"}}, {"models": [MODEL]}, set()),
    ({"sort": {"by": None, "partition": None}}, {}, set()),
    ({"sort": None}, {"route": "fallback"}, set()),
    (None, {"route": "sort", "models": [MODEL]}, set()),
    ({"sort": "latency"}, {"route": None, "transforms": []}, set()),
    ({"max_price": {"prompt": 1000, "completion": 1000.5, "request": 1}}, {}, set()),
    ({"max_price": {"prompt": "1e3", "image": 0, "audio": None}}, {}, {"max_price.image"}),
    ({"preferred_min_throughput": "5", "preferred_max_latency": 30}, {}, set()),
    ({"preferred_min_throughput": 5.5, "preferred_max_latency": "30.5"}, {}, set()),
    ({"zdr": None, "data_collection": "allow", "require_parameters": False}, {}, set()),
    (
        {"enforce_distillable_text": False, "experimental": {"x": 1}},
        {},
        {
            "enforce_distillable_text",
            "experimental",
        },
    ),
    ({}, {"preset": None, "plugins": []}, set()),
]


@dataclass
class Served:
    client: httpx.AsyncClient
    upstream: CaptureUpstream


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with capture_upstream() as upstream:
        database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
        await upgrade_to_head_async(database)
        catalog = write_catalog(
            tmp_path / "c.toml", {"a": upstream.url, "b": upstream.url}, exacto="a"
        )
        settings = Settings(
            server=ServerSettings(auth="off"),
            catalog=CatalogSettings(catalog=catalog),
            database=DatabaseSettings(database_url=database),
        )
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=10) as client,
        ):
            yield Served(client, upstream)


@pytest.mark.parametrize(("provider", "extra", "ignored"), CORPUS)
async def test_openrouter_shaped_bodies_are_answered(
    served: Served, provider: dict[str, Any] | None, extra: dict[str, Any], ignored: set[str]
) -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 16,
        **extra,
    }
    if provider is not None:
        body["provider"] = provider
    answer = await served.client.post(
        "/api/v1/chat/completions", json=body, headers={"X-Route-Explain": "1"}
    )
    assert answer.status_code == 200, answer.text
    route = answer.json()["route"]
    listed = {name.removeprefix("provider.") for name in route.get("ignored", {})}
    assert listed == ignored
    sent = served.upstream.bodies[-1]
    assert not GATEWAY_ONLY & set(sent), sent


async def test_route_and_string_sort_set_the_partition(served: Served) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "provider": {"sort": "price"},
        "route": "sort",
    }
    answer = await served.client.post(
        "/v1/chat/completions", json=body, headers={"X-Route-Explain": "1"}
    )
    assert answer.status_code == 200, answer.text
    route = answer.json()["route"]
    assert route["sort"] == {"by": "price", "partition": "none"}
    assert route["mode"] == "floor"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"preset": "my-preset"}, "preset"),
        ({"plugins": [{"id": "web"}]}, "plugins"),
        ({"transforms": ["middle-out"]}, "transforms"),
        ({"route": "cheapest"}, "route"),
        ({"provider": {"max_price": {"prompt": "cheap"}}}, "provider.max_price.prompt"),
        ({"provider": {"max_price": {"prompt": "-1"}}}, "provider.max_price.prompt"),
        ({"provider": {"sort": "random"}}, "provider.sort"),
        ({"provider": {"allow_fallbacks": "no"}}, "provider.allow_fallbacks"),
        ({"provider": {"order": [1, 2]}}, "provider.order"),
    ],
)
async def test_unsupported_or_invalid_fields_are_400_naming_the_field(
    served: Served, extra: dict[str, Any], field: str
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}
    answer = await served.client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["metadata"]["field"] == field
    assert field.split(".")[0] in error["message"]
    assert served.upstream.bodies == []
