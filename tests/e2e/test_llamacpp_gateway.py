"""The `local` provider through the gateway: a real llama-server, driven by the openai client.

Streaming and not, cached tokens priced with the discount, gpt-oss reasoning, parser failures.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from providers.catalog import Endpoint, Price
from providers.http1 import HttpClient
from providers.llamacpp import LlamaCppProvider
from providers.pricing import cost_of
from providers.provider import UpstreamCall
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from providers.usage import Usage
from tests.e2e.conftest import embedded_settings
from tests.e2e.llamacpp_fixtures import (
    HARMONY_TEMPLATE,
    LONG_PROMPT,
    MODEL,
    THINKING_TEMPLATE,
    generation_record,
    write_local_catalog,
)
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.llama import LlamaServer, ensure_llama_server, run_llama_server
from tests.support.tiny_gguf import write_tiny_gguf

ONLY_LOCAL = {"provider": {"only": ["local"]}}
HELLO = [{"role": "user", "content": "hello"}]

# The first run may build llama-server (minutes) inside a fixture's setup.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_llama_server()
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-model") / "tiny.gguf")


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[LlamaServer]:
    with run_llama_server(tiny_model, slots=2, ctx=4096) as running:
        yield running


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"sim": Profile(completion_tokens=5)})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
async def gateway(server: LlamaServer, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    catalog = write_local_catalog(tmp_path / "catalog.toml", f"{server.base_url}/v1")
    async with run_gateway(embedded_settings(tmp_path, catalog)) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=gateway.v1, api_key="unused", max_retries=0) as client:
        yield client


async def test_only_local_is_answered_by_llama_cpp(
    client: AsyncOpenAI, server: LlamaServer
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=8,
        extra_body=ONLY_LOCAL,  # type: ignore[arg-type]
    )
    completion = raw.parse()
    extra = completion.model_extra or {}
    assert extra["provider"] == "local"
    assert completion.id.startswith("gen-") and completion.model == MODEL
    assert (completion.system_fingerprint or "").startswith("b")  # llama-server's build tag
    assert "timings" in extra  # llama.cpp's own figures came back from the real server
    assert completion.choices[0].finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and 0 < usage.completion_tokens <= 8
    assert usage.prompt_tokens == extra["timings"]["prompt_n"] + extra["timings"]["cache_n"]
    assert raw.headers["x-route-attempts"] == "1"


async def test_streamed_answer_ends_with_usage_and_cost(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=8,
        stream=True,
        extra_body=ONLY_LOCAL,
    )
    chunks = [chunk async for chunk in stream]
    assert {(c.model_extra or {})["provider"] for c in chunks} == {"local"}
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert len(finish) == 1
    last = chunks[-1]
    assert last.usage is not None and 0 < last.usage.completion_tokens <= 8
    assert Decimal(str((last.usage.model_extra or {})["cost"])) > 0


async def test_adapter_never_reuses_the_connection_a_stream_ended_on(server: LlamaServer) -> None:
    # llama-server drops the connection after every stream while saying keep-alive. Without
    # `Connection: close` most of these plain requests fail on the socket the stream left in the
    # pool ("Can not write request body"); with it, none may.
    endpoint = Endpoint(
        model=MODEL,
        provider="local",
        base_url=f"{server.base_url}/v1",
        upstream_model="gpt-oss-20b",
        context_length=2048,
        price=Price(),
        kind="llamacpp",
    )
    call = UpstreamCall(endpoint, {"messages": HELLO, "max_tokens": 2})
    async with HttpClient() as client:
        adapter = LlamaCppProvider(client)
        for _ in range(30):
            chunks = [chunk async for chunk in adapter.stream(call)]
            assert chunks[-1].usage is not None
            done = await adapter.complete(call)
            assert done.usage.completion_tokens > 0


async def test_repeated_prefix_is_cached_and_priced_with_the_discount(
    client: AsyncOpenAI, gateway: RunningGateway
) -> None:
    messages: Any = [{"role": "user", "content": LONG_PROMPT}]
    first = await client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=4, temperature=0, extra_body=ONLY_LOCAL
    )
    second = await client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=4, temperature=0, extra_body=ONLY_LOCAL
    )
    assert first.usage and second.usage and second.usage.prompt_tokens_details
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached > 256
    assert cached == (second.model_extra or {})["timings"]["cache_n"]
    price = gateway.resources.catalog.by_model[MODEL][0].price
    expected = cost_of(
        Usage(second.usage.prompt_tokens, second.usage.completion_tokens, cached), price
    )
    extra = second.usage.model_extra or {}
    assert Decimal(str(extra["cost"])) == expected.total
    discount = Decimal(str(extra["cost_details"]["cache_discount"]))
    assert discount == expected.cache_discount == _discount(cached, price) > 0
    record = await generation_record(gateway.url, second.id)
    assert record["provider_name"] == "local"
    assert record["native_tokens_cached"] == cached
    assert Decimal(str(record["cache_discount"])) == discount


def _discount(cached: int, price: Price) -> Decimal:
    return (price.prompt - price.effective_cache_read()) * cached / Decimal(1_000_000)


async def test_speed_comes_from_llama_cpp_timings(
    client: AsyncOpenAI, gateway: RunningGateway
) -> None:
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=16,
        extra_body={**ONLY_LOCAL, "ignore_eos": True},
    )
    timings = (completion.model_extra or {})["timings"]
    record = await generation_record(gateway.url, completion.id)
    assert record["throughput"] == pytest.approx(timings["predicted_per_second"], rel=0.01)
    assert record["time_to_first_token"] <= record["latency"] - timings["predicted_ms"] + 0.01


@pytest.fixture(scope="module")
def thinking_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    template = tmp_path_factory.mktemp("templates") / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    extra = ["--chat-template-file", str(template)]
    with run_llama_server(tiny_model, slots=1, ctx=2048, extra_args=extra) as running:
        yield running


@pytest.fixture
async def thinking_client(thinking_server: LlamaServer, tmp_path: Path) -> AsyncIterator[Any]:
    catalog = write_local_catalog(tmp_path / "catalog.toml", f"{thinking_server.base_url}/v1")
    async with (
        run_gateway(embedded_settings(tmp_path, catalog)) as running,
        AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as client,
    ):
        yield client


async def _reasoning_answer(client: AsyncOpenAI, **extra: Any) -> Any:
    return await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=12,
        temperature=0,
        extra_body={**ONLY_LOCAL, "ignore_eos": True, **extra},
    )


async def test_reasoning_comes_back_as_reasoning_and_is_counted(thinking_client: Any) -> None:
    answer = await _reasoning_answer(thinking_client)
    message = answer.choices[0].message.model_extra or {}
    assert message.get("reasoning")  # llama.cpp's reasoning_content, renamed
    assert "reasoning_content" not in message
    usage = answer.usage
    assert usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens == 12


async def test_excluded_reasoning_is_dropped_but_still_counted(thinking_client: Any) -> None:
    answer = await _reasoning_answer(thinking_client, reasoning={"exclude": True})
    message = answer.choices[0].message.model_extra or {}
    assert "reasoning" not in message and "reasoning_content" not in message
    assert answer.usage.completion_tokens_details.reasoning_tokens == 12


async def test_streamed_reasoning_deltas_are_renamed_and_counted(thinking_client: Any) -> None:
    stream = await thinking_client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=12,
        stream=True,
        extra_body={**ONLY_LOCAL, "ignore_eos": True},
    )
    chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    assert any(d.get("reasoning") for d in deltas)
    assert not any("reasoning_content" in d for d in deltas)
    usage = chunks[-1].usage
    assert 0 < usage.completion_tokens_details.reasoning_tokens <= usage.completion_tokens


async def test_reasoning_effort_reaches_the_chat_template(thinking_client: Any) -> None:
    async def prompt_tokens(**extra: Any) -> int:
        answer = await _reasoning_answer(thinking_client, **extra)
        tokens: int = answer.usage.prompt_tokens
        return tokens

    default = await prompt_tokens()
    low = await prompt_tokens(reasoning={"effort": "low"})
    none = await prompt_tokens(reasoning={"effort": "none"})  # gpt-oss can't: low instead
    high = await prompt_tokens(reasoning={"effort": "high"})
    assert default < low == none != high


async def test_reasoning_in_the_history_reaches_the_template(thinking_client: Any) -> None:
    async def prompt_tokens(turn: dict[str, str]) -> int:
        answer = await thinking_client.chat.completions.create(
            model=MODEL,
            messages=[*HELLO, turn, {"role": "user", "content": "and"}],
            max_tokens=1,
            extra_body=ONLY_LOCAL,
        )
        tokens: int = answer.usage.prompt_tokens
        return tokens

    plain = await prompt_tokens({"role": "assistant", "content": "hi"})
    thought = await prompt_tokens({"role": "assistant", "content": "hi", "reasoning": "the test"})
    assert thought > plain


@pytest.fixture(scope="module")
def harmony_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    template = tmp_path_factory.mktemp("templates") / "harmony.jinja"
    template.write_text(HARMONY_TEMPLATE)
    extra = ["--chat-template-file", str(template)]
    with run_llama_server(tiny_model, slots=1, ctx=2048, extra_args=extra) as running:
        yield running


async def test_harmony_parser_failure_falls_back_to_a_hosted_provider(
    harmony_server: LlamaServer, fleet: Fleet, tmp_path: Path
) -> None:
    # Check the premise on the server itself: the parser's 500.
    async with httpx.AsyncClient(timeout=30) as raw:
        direct = await raw.post(
            f"{harmony_server.base_url}/v1/chat/completions",
            json={"messages": HELLO, "max_tokens": 8, "ignore_eos": True},
        )
    assert direct.status_code == 500
    assert "does not match the expected" in direct.json()["error"]["message"]

    catalog = write_local_catalog(
        tmp_path / "catalog.toml", f"{harmony_server.base_url}/v1", fleet.url_for("sim")
    )
    async with (
        run_gateway(embedded_settings(tmp_path, catalog)) as gateway,
        AsyncOpenAI(base_url=gateway.v1, api_key="unused", max_retries=0) as client,
    ):
        body: dict[str, Any] = {"ignore_eos": True, "debug": {"route": True}}
        answer = await client.chat.completions.create(
            model=f"{MODEL}:floor",
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=8,
            extra_body=body,
        )
        extra = answer.model_extra or {}
        assert extra["provider"] == "sim"
        attempts = extra["route"]["attempts"]
        assert attempts[0]["provider"] == "local"
        assert attempts[0]["error_class"] == "UpstreamServerError"
        assert attempts[-1] == {**attempts[-1], "provider": "sim", "outcome": "ok"}

        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(
                model=MODEL,
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=8,
                extra_body={**ONLY_LOCAL, "ignore_eos": True},
            )
        assert failed.value.status_code == 502
        assert "does not match the expected" in json.dumps(failed.value.body)
