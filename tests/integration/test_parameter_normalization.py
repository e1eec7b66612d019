"""Per-endpoint normalization over HTTP: unsupported parameters dropped (and explained),
OpenRouter's `reasoning` as `reasoning_effort`, a context-length 400 moving on to the next
model of `models`, and the model that served stamped on the answer and the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.support.capture import capture_upstream
from tests.support.gateway import run_gateway
from tests.support.polling import eventually

SHORT, LONG = "openai/gpt-oss-20b", "openai/gpt-oss-120b"


def endpoint(model: str, provider: str, url: str, parameters: list[str]) -> str:
    return (
        f'\n[[endpoints]]\nmodel = "{model}"\nprovider = "{provider}"\nbase_url = "{url}"\n'
        f'upstream_model = "gpt-oss"\ncontext_length = 131072\n'
        f"supported_parameters = {parameters!r}\n".replace("'", '"')
        + 'price = { prompt = "0.1", completion = "0.5" }\n'
    )


def catalog(path: Path, endpoints: str) -> Path:
    models = "".join(
        f'[models."{m}"]\nname = "{m}"\ncontext_length = 131072\n\n' for m in (SHORT, LONG)
    )
    path.write_text(models + endpoints)
    return path


async def settings_for(tmp_path: Path, catalog_path: Path) -> Settings:
    database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
    await upgrade_to_head_async(database)
    return Settings(
        server=ServerSettings(auth="off"),
        catalog=CatalogSettings(catalog=catalog_path),
        database=DatabaseSettings(database_url=database),
        routing=RoutingSettings(retries_per_endpoint=0),
        ledger=LedgerSettings(flush_interval_s=0.05),
    )


@pytest.fixture
async def models_fleet(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    fleet = await start_fleet({"tiny": Profile(context_length=3), "roomy": Profile()})
    try:
        path = catalog(
            tmp_path / "c.toml",
            endpoint(SHORT, "tiny", fleet.url_for("tiny"), ["max_tokens"])
            + endpoint(LONG, "roomy", fleet.url_for("roomy"), ["max_tokens"]),
        )
        async with (
            run_gateway(await settings_for(tmp_path, path)) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=10) as client,
        ):
            yield client
    finally:
        await fleet.close()


def long_prompt() -> list[dict[str, str]]:
    return [{"role": "user", "content": "a prompt longer than three tokens for sure"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_context_length_400_moves_to_the_next_model_and_stamps_it(
    models_fleet: httpx.AsyncClient, stream: bool
) -> None:
    body = {"model": SHORT, "models": [SHORT, LONG], "messages": long_prompt(), "stream": stream}
    answer = await models_fleet.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-route-attempts"] == "2"
    if stream:
        models = {line for line in answer.text.splitlines() if '"model"' in line}
        assert models and all(f'"model":"{LONG}"' in line for line in models)
    else:
        assert answer.json()["model"] == LONG
        assert answer.json()["provider"] == "roomy"
    gen_id = answer.headers["x-generation-id"]

    async def recorded() -> bool:
        found = await models_fleet.get("/api/v1/generation", params={"id": gen_id})
        return found.status_code == 200

    await eventually(recorded, what="the generation in the ledger")
    data = (await models_fleet.get("/api/v1/generation", params={"id": gen_id})).json()["data"]
    assert data["model"] == LONG and data["requested_model"] == SHORT
    outcomes = [r["outcome"] for r in data["provider_responses"]]
    assert outcomes == ["context_length", "ok"]


async def test_context_length_400_without_models_is_passed_on(
    models_fleet: httpx.AsyncClient,
) -> None:
    body = {"model": SHORT, "messages": long_prompt()}
    answer = await models_fleet.post("/v1/chat/completions", json=body)
    assert answer.status_code == 400, answer.text
    assert "context length" in answer.json()["error"]["message"]


async def test_unsupported_parameters_are_dropped_and_reasoning_translated(tmp_path: Path) -> None:
    async with capture_upstream() as upstream:
        path = catalog(
            tmp_path / "c.toml",
            endpoint(SHORT, "host", upstream.url, ["max_tokens", "reasoning", "temperature"]),
        )
        async with (
            run_gateway(await settings_for(tmp_path, path)) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=10) as client,
        ):
            body: dict[str, Any] = {
                "model": SHORT,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 100,
                "temperature": 0.2,
                "top_k": 5,
                "logit_bias": {"1": 2},
                "reasoning": {"effort": "high", "exclude": False},
                "include_reasoning": True,
            }
            answer = await client.post(
                "/v1/chat/completions", json=body, headers={"X-Route-Explain": "1"}
            )
            assert answer.status_code == 200, answer.text
            sent = upstream.bodies[-1]
            assert sent["reasoning_effort"] == "high"
            assert "reasoning" not in sent and "include_reasoning" not in sent
            assert "top_k" not in sent and "logit_bias" not in sent
            assert sent["temperature"] == 0.2 and sent["max_tokens"] == 100
            dropped = answer.json()["route"]["dropped_parameters"]
            assert dropped == {f"{SHORT}@host": ["include_reasoning", "logit_bias", "top_k"]}
            budget = {**body, "reasoning": {"max_tokens": 90}}
            await client.post("/v1/chat/completions", json=budget)
            assert upstream.bodies[-1]["reasoning_effort"] == "high"  # 90 of 100 tokens
            # Without the client's own cap the budget is absolute: the cap the gateway sends
            # (the context left, 131k here) is not the client's answer length.
            for tokens, effort in ((8192, "high"), (2048, "medium"), (100, "low")):
                unbounded = {k: v for k, v in body.items() if k != "max_tokens"}
                unbounded["reasoning"] = {"max_tokens": tokens}
                await client.post("/v1/chat/completions", json=unbounded)
                sent = upstream.bodies[-1]
                assert sent["reasoning_effort"] == effort and sent["max_tokens"] > 100_000
            aliased = {k: v for k, v in body.items() if k != "max_tokens"}
            aliased |= {"max_completion_tokens": 100, "reasoning": {"max_tokens": 60}}
            await client.post("/v1/chat/completions", json=aliased)
            assert upstream.bodies[-1]["reasoning_effort"] == "medium"  # 60 of 100 tokens
            assert upstream.bodies[-1]["max_tokens"] == 100
            strict = {**body, "provider": {"require_parameters": True}}
            refused = await client.post("/v1/chat/completions", json=strict)
            assert refused.status_code == 404, refused.text
            assert len(upstream.bodies) == 6
