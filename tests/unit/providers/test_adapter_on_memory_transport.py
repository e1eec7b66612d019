"""The OpenAI-compatible and llama.cpp adapters over the in-memory transport: no sockets."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from providers.catalog import Endpoint, Price
from providers.errors import (
    UpstreamBadRequest,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamReset,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from providers.http1 import ConnectionClosed, Timeout
from providers.llamacpp import LlamaCppProvider
from providers.memory_transport import MemoryRequest, MemoryResponse, MemoryTransport
from providers.openai_compatible import OpenAICompatibleProvider
from providers.provider import Timeouts, UpstreamCall
from routing.retry import retryable

ANSWER = {
    "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 3},
    },
}


def endpoint(**extra: Any) -> Endpoint:
    return Endpoint(
        model="openai/gpt-oss-20b",
        provider="up",
        base_url="http://up.test/v1/",
        upstream_model="gpt-oss-20b",
        context_length=8192,
        price=Price(Decimal("0.1"), Decimal("0.5")),
        **extra,
    )


def call(**extra: Any) -> UpstreamCall:
    body = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]}
    return UpstreamCall(endpoint(**extra), body, timeouts=Timeouts(1.0, 2.0, 30.0, 5.0))


def answering(response: Callable[[MemoryRequest], MemoryResponse]) -> MemoryTransport:
    return MemoryTransport(response)


def sse(*events: dict[str, Any] | str) -> list[bytes]:
    return [
        b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n"
        for e in events
    ]


async def test_complete_sends_the_body_and_reads_usage() -> None:
    transport = answering(lambda r: MemoryResponse.of(200, json.dumps(ANSWER).encode()))
    completion = await OpenAICompatibleProvider(transport).complete(call())
    assert completion.usage.prompt_tokens == 7 and completion.usage.cached_tokens == 3
    (request,) = transport.requests
    assert (request.method, request.url) == ("POST", "http://up.test/v1/chat/completions")
    assert json.loads(request.body)["messages"][0]["content"] == "hi"
    # non-streamed: the headers come after the whole generation, so they wait the total limit
    assert request.timeouts is not None
    assert (request.timeouts.headers, request.timeouts.total, request.timeouts.idle) == (30, 30, 5)


async def test_a_stream_waits_for_headers_only_the_first_token_limit() -> None:
    transport = answering(lambda r: MemoryResponse(200, {}, sse({"choices": []}, "[DONE]")))
    chunks = [c async for c in OpenAICompatibleProvider(transport).stream(call())]
    assert len(chunks) == 1
    (request,) = transport.requests
    assert request.timeouts is not None and request.timeouts.headers == 2.0
    assert json.loads(request.body)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, UpstreamRateLimited),
        (500, UpstreamServerError),
        (400, UpstreamBadRequest),
    ],
)
async def test_error_statuses_are_classified(status: int, expected: type[Exception]) -> None:
    body = json.dumps({"error": {"message": "nope"}}).encode()
    transport = answering(lambda r: MemoryResponse.of(status, body, {"Retry-After": "3"}))
    with pytest.raises(expected) as info:
        await OpenAICompatibleProvider(transport).complete(call())
    assert "nope" in str(info.value)


async def test_an_error_status_with_a_cut_body_keeps_its_class() -> None:
    def cut(request: MemoryRequest) -> MemoryResponse:
        return MemoryResponse(503, {}, [b'{"err'], ConnectionClosed("reset"))

    with pytest.raises(UpstreamServerError) as info:
        await OpenAICompatibleProvider(answering(cut)).complete(call())
    assert retryable(info.value, alone=False)


async def test_a_200_body_cut_short_is_answered_and_never_retried() -> None:
    def cut(request: MemoryRequest) -> MemoryResponse:
        return MemoryResponse(200, {}, [b'{"choices": ['], ConnectionClosed("reset"))

    with pytest.raises(UpstreamReset) as info:
        await OpenAICompatibleProvider(answering(cut)).complete(call())
    assert info.value.answered and not retryable(info.value, alone=True)
    assert info.value.fallback


async def test_a_stream_cut_before_its_first_event_is_answered() -> None:
    def cut(request: MemoryRequest) -> MemoryResponse:
        return MemoryResponse(200, {}, [], ConnectionClosed("reset"))

    with pytest.raises(UpstreamReset) as info:
        async for _ in OpenAICompatibleProvider(answering(cut)).stream(call()):
            pass
    assert info.value.answered


async def test_a_stream_that_stalls_mid_body_is_answered() -> None:
    def stall(request: MemoryRequest) -> MemoryResponse:
        return MemoryResponse(200, {}, sse({"choices": []}), Timeout("idle", 5))

    with pytest.raises(UpstreamTimeout) as info:
        async for _ in OpenAICompatibleProvider(answering(stall)).stream(call()):
            pass
    assert info.value.answered


async def test_a_bad_200_body_is_answered() -> None:
    transport = answering(lambda r: MemoryResponse.of(200, b"not json"))
    with pytest.raises(UpstreamProtocolError) as info:
        await OpenAICompatibleProvider(transport).complete(call())
    assert info.value.answered


async def test_a_reset_before_any_answer_stays_retryable() -> None:
    def refuse(request: MemoryRequest) -> MemoryResponse:
        raise ConnectionClosed("reset before the answer")

    with pytest.raises(UpstreamReset) as info:
        await OpenAICompatibleProvider(answering(refuse)).complete(call())
    assert not info.value.answered and retryable(info.value, alone=False)


async def test_the_endpoint_picks_its_transport() -> None:
    default = answering(lambda r: MemoryResponse.of(200, json.dumps(ANSWER).encode()))
    other = answering(lambda r: MemoryResponse.of(200, json.dumps(ANSWER).encode()))
    adapter = OpenAICompatibleProvider(default, {"httpx": other})
    await adapter.complete(call(transport="httpx"))
    assert (len(default.requests), len(other.requests)) == (0, 1)
    with pytest.raises(UpstreamConnectError, match="not set up"):
        await OpenAICompatibleProvider(default).complete(call(transport="httpx"))


async def test_llamacpp_503_means_unavailable_on_the_memory_transport() -> None:
    transport = answering(lambda r: MemoryResponse.of(503, b'{"error": {"message": "loading"}}'))
    with pytest.raises(UpstreamUnavailable):
        await LlamaCppProvider(transport).complete(call(kind="llamacpp"))
