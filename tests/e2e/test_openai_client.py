"""The official openai client, base_url swapped, against the gateway and real upstreams."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from providers.simulator.server import Fleet
from tests.e2e.conftest import embedded_settings
from tests.support.capture import capture_upstream
from tests.support.gateway import RunningGateway, run_gateway, write_catalog

MODEL = "openai/gpt-oss-20b"
MESSAGES = [{"role": "user", "content": "Say something about routing."}]


async def test_non_streaming_completion(client: AsyncOpenAI, gateway: RunningGateway) -> None:
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    completion = raw.parse()
    assert completion.id.startswith("gen-")
    assert raw.headers["x-generation-id"] == completion.id
    assert completion.model == MODEL
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra or {}
    assert extra["provider"] in ("alpha", "beta")
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    cost = Decimal(str((usage.model_extra or {})["cost"]))
    assert cost > 0
    assert raw.headers["x-route-mode"] == "balanced"


async def test_streaming_completion(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    ids = {chunk.id for chunk in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("gen-")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.usage is not None and last.usage.completion_tokens == 12
    assert "cost" in (last.usage.model_extra or {})
    assert all((c.model_extra or {}).get("provider") in ("alpha", "beta") for c in chunks)


async def test_repeated_prefix_reports_cached_tokens_and_discount(client: AsyncOpenAI) -> None:
    long = [{"role": "user", "content": "cache me " * 400}]
    first = await client.chat.completions.create(
        model=MODEL, messages=long, extra_body={"provider": {"only": ["alpha"]}}
    )
    second = await client.chat.completions.create(
        model=MODEL, messages=long, extra_body={"provider": {"only": ["alpha"]}}
    )
    assert first.usage and second.usage
    assert first.usage.prompt_tokens_details and second.usage.prompt_tokens_details
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert (second.usage.prompt_tokens_details.cached_tokens or 0) > 0
    details = (second.usage.model_extra or {})["cost_details"]
    assert Decimal(str(details["cache_discount"])) > 0
    assert Decimal(str(second.usage.model_extra["cost"])) < Decimal(
        str(first.usage.model_extra["cost"])
    )


async def test_unknown_fields_reach_the_upstream_untouched(tmp_path: Path) -> None:
    async with capture_upstream() as upstream:
        catalog = write_catalog(tmp_path / "c.toml", {"cap": upstream.url})
        async with (
            run_gateway(embedded_settings(tmp_path, catalog)) as gw,
            AsyncOpenAI(base_url=gw.v1, api_key="client-key", max_retries=0) as client,
        ):
            completion = await client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                temperature=0.25,
                extra_body={"vendor_knob": {"depth": 3}, "provider": {"sort": "price"}},
            )
    assert completion.choices[0].message.content == "captured"
    sent = upstream.bodies[0]
    assert sent["vendor_knob"] == {"depth": 3}
    assert sent["temperature"] == 0.25
    assert sent["model"] == "gpt-oss-20b"  # the endpoint's upstream model id
    assert "provider" not in sent
    # The client's key is the gateway's business, never forwarded upstream.
    assert "client-key" not in str(upstream.headers[0])


async def test_error_shapes(client: AsyncOpenAI, gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:  # 400, as OpenRouter answers
        await client.chat.completions.create(model="nobody/nothing", messages=MESSAGES)
    assert unknown.value.status_code == 400
    assert "nobody/nothing" in unknown.value.message
    assert str(unknown.value.code) == "400"

    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model=MODEL, messages="not a list")  # type: ignore[arg-type]
    assert bad.value.status_code == 400
    body = bad.value.body
    assert isinstance(body, dict) and "messages" in body["message"]

    # JSON-typed, as SDKs send it (auth is off here: other content types are a 415).
    async with httpx.AsyncClient(headers={"Content-Type": "application/json"}) as http:
        resp = await http.post(f"{gateway.v1}/chat/completions", content=b"{broken")
        assert resp.status_code == 400
        assert set(resp.json()["error"]) >= {"code", "message", "metadata"}
        huge = b'{"model": "x", "messages": [], "pad": "' + b"a" * (5 * 1024 * 1024) + b'"}'
        resp = await http.post(f"{gateway.v1}/chat/completions", content=huge)
        assert resp.status_code == 413
        assert resp.json()["error"]["code"] == 413
        assert resp.json()["error"]["metadata"]["reason"] == "payload_too_large"


async def test_no_enabled_endpoint_is_503_saying_why(fleet: Fleet, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.toml", {"alpha": fleet.url_for("alpha")})
    text = catalog.read_text().replace(
        'upstream_model = "gpt-oss-20b"',
        'upstream_model = "gpt-oss-20b"\napi_key_env = "GW_TEST_UNSET_KEY_VAR"',
    )
    catalog.write_text(text)
    async with (
        run_gateway(embedded_settings(tmp_path, catalog)) as gw,
        AsyncOpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client,
    ):
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert info.value.status_code == 503
    assert "GW_TEST_UNSET_KEY_VAR" in str(info.value.body)


async def test_upstream_failure_falls_back_and_secret_never_leaks(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-upstream-secret-123"
    monkeypatch.setenv("GW_TEST_ALPHA_KEY", secret)
    await fleet.set_profile("alpha", api_key="something-else")  # alpha rejects our key: 401
    catalog = write_catalog(
        tmp_path / "c.toml", {"alpha": fleet.url_for("alpha"), "beta": fleet.url_for("beta")}
    )
    text = catalog.read_text().replace(
        'provider = "alpha"', 'provider = "alpha"\napi_key_env = "GW_TEST_ALPHA_KEY"'
    )
    catalog.write_text(text)
    async with (
        run_gateway(embedded_settings(tmp_path, catalog)) as gw,
        AsyncOpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client,
    ):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=MESSAGES,
            extra_body={"provider": {"order": ["alpha", "beta"], "sort": "price"}},
            extra_headers={"X-Route-Explain": "1"},
        )
        only_alpha = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"provider": {"only": ["alpha"]}}
        )
        with pytest.raises(openai.APIStatusError) as info:
            await only_alpha
    completion = raw.parse()
    assert (completion.model_extra or {})["provider"] == "beta"
    assert raw.headers["x-route-attempts"] == "2"
    assert secret not in raw.text
    assert secret not in str(info.value.body) and secret not in caplog.text
    assert info.value.status_code >= 400


@pytest.mark.parametrize("provider", ["alpha", "beta"])  # alpha over http1, beta over httpx
async def test_each_transport_serves_streamed_and_not(client: AsyncOpenAI, provider: str) -> None:
    only = {"provider": {"only": [provider]}}
    completion = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_body=only
    )
    assert (completion.model_extra or {})["provider"] == provider
    assert completion.usage is not None and completion.usage.completion_tokens == 12
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_body=only
    )
    chunks = [chunk async for chunk in stream]
    assert all((c.model_extra or {}).get("provider") == provider for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
