"""The llama.cpp adapter's translations: gpt-oss reasoning, timings, usage, error classes."""

from __future__ import annotations

from typing import Any, cast

import pytest

from providers.catalog import Endpoint, Price
from providers.errors import (
    UpstreamContextExceeded,
    UpstreamServerError,
    UpstreamUnavailable,
    error_for_status,
)
from providers.llamacpp import (
    LlamaCppProvider,
    ReasoningRequest,
    classify,
    estimate_reasoning_tokens,
    reasoning_of,
    translate_body,
    usage_with_timings,
    with_reasoning_tokens,
)
from providers.provider import UpstreamCall
from providers.usage import Usage

LOCAL = Endpoint(
    model="openai/gpt-oss-20b",
    provider="local",
    base_url="http://127.0.0.1:8080/v1",
    upstream_model="gpt-oss-20b",
    context_length=8192,
    price=Price(),
    kind="llamacpp",
)
MESSAGES = [{"role": "user", "content": "hi"}]
TIMINGS = {
    "cache_n": 373,
    "prompt_n": 1,
    "prompt_ms": 2.0,
    "predicted_n": 8,
    "predicted_ms": 120.0,
    "predicted_per_second": 66.6,
}


def provider() -> LlamaCppProvider:
    return LlamaCppProvider(cast(Any, None))  # translations never touch the session


def call(**body: Any) -> UpstreamCall:
    return UpstreamCall(LOCAL, {"messages": MESSAGES, **body})


@pytest.mark.parametrize(
    ("reasoning", "effort"),
    [
        ({"effort": "high"}, "high"),
        ({"effort": "medium"}, "medium"),
        ({"effort": "low"}, "low"),
        ({"effort": "none"}, "low"),  # gpt-oss can't turn reasoning off
        ({"effort": "minimal"}, "low"),
        ({"enabled": False}, "low"),
        ({"effort": "HIGH"}, "high"),
        ({"max_tokens": 500}, None),
        ({"effort": "bogus"}, None),
    ],
)
def test_reasoning_effort_goes_to_chat_template_kwargs(
    reasoning: dict[str, Any], effort: str | None
) -> None:
    body = translate_body({"messages": MESSAGES, "reasoning": reasoning})
    assert "reasoning" not in body
    if effort is None:
        assert "chat_template_kwargs" not in body
    else:
        assert body["chat_template_kwargs"] == {"reasoning_effort": effort}


def test_effort_merges_into_the_clients_own_template_kwargs() -> None:
    body = translate_body(
        {
            "messages": MESSAGES,
            "reasoning": {"effort": "none"},
            "chat_template_kwargs": {"builtin_tools": ["browser"], "reasoning_effort": "high"},
        }
    )
    assert body["chat_template_kwargs"] == {"builtin_tools": ["browser"], "reasoning_effort": "low"}


def test_openai_reasoning_effort_and_include_reasoning_are_understood() -> None:
    body = {"messages": MESSAGES, "reasoning_effort": "minimal", "include_reasoning": False}
    assert reasoning_of(body) == ReasoningRequest("low", exclude=True)
    sent = translate_body(body)
    assert sent == {"messages": MESSAGES, "chat_template_kwargs": {"reasoning_effort": "low"}}


def test_no_reasoning_fields_leave_the_body_alone() -> None:
    body = {"messages": MESSAGES, "max_tokens": 5, "temperature": 0.2, "chat_template_kwargs": {}}
    assert translate_body(body) == body
    assert reasoning_of(body) == ReasoningRequest()


def test_reasoning_in_the_history_is_sent_as_reasoning_content() -> None:
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning": "greet back"},
        {"role": "user", "content": "and?"},
    ]
    sent = translate_body({"messages": history})
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": "hello",
        "reasoning": "greet back",
        "reasoning_content": "greet back",
    }
    assert sent["messages"][0] is history[0]
    assert "reasoning_content" not in history[1]  # the client's body is not mutated


def answer(message: dict[str, Any], usage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
        **extra,
    }


def test_finish_renames_reasoning_and_counts_its_tokens() -> None:
    payload = answer(
        {"role": "assistant", "content": "Hi!", "reasoning_content": "The user greets me."},
        {"prompt_tokens": 374, "completion_tokens": 30, "prompt_tokens_details": {}},
        timings=TIMINGS,
    )
    done = provider().finish(call(), payload, ttft=1.0, latency=1.0)
    message = payload["choices"][0]["message"]
    assert message["reasoning"] == "The user greets me." and "reasoning_content" not in message
    assert done.usage.cached_tokens == 373  # from timings.cache_n when usage omits it
    assert 0 < done.usage.reasoning_tokens < 30
    assert done.usage.reasoning_tokens == estimate_reasoning_tokens(30, 19, 3)


def test_finish_drops_reasoning_when_excluded_but_still_counts_it() -> None:
    payload = answer(
        {"role": "assistant", "content": "", "reasoning_content": "thinking"},
        {"prompt_tokens": 10, "completion_tokens": 4},
    )
    done = provider().finish(call(reasoning={"exclude": True}), payload, 0.5, 0.5)
    message = payload["choices"][0]["message"]
    assert "reasoning" not in message and "reasoning_content" not in message
    assert done.usage.reasoning_tokens == 4


def test_finish_takes_speed_and_ttft_from_timings() -> None:
    payload = answer({"role": "assistant", "content": "x"}, {"prompt_tokens": 374}, timings=TIMINGS)
    done = provider().finish(call(), payload, ttft=0.5, latency=0.5)
    assert 8 / done.generation_s == pytest.approx(66.6)  # tokens/s is predicted_per_second
    assert done.ttft_s == pytest.approx(0.380)  # headers came after the whole answer
    assert done.latency_s == 0.5
    assert done.usage.completion_tokens == 8  # predicted_n when usage omits it
    assert done.usage.prompt_tokens == 374


def test_finish_without_timings_keeps_the_measured_figures() -> None:
    payload = answer({"role": "assistant", "content": "x"}, {"prompt_tokens": 3})
    done = provider().finish(call(), payload, ttft=0.2, latency=0.3)
    assert (done.ttft_s, done.latency_s, done.generation_s) == (0.2, 0.3, None)


def test_usage_with_timings_prefers_what_usage_reports() -> None:
    usage = Usage(prompt_tokens=374, completion_tokens=8, cached_tokens=300)
    assert usage_with_timings(usage, TIMINGS) is usage
    assert usage_with_timings(usage, None) is usage
    older = usage_with_timings(Usage(prompt_tokens=1, completion_tokens=8), TIMINGS)
    assert older.prompt_tokens == 374 and older.cached_tokens == 373  # prompt_n + cache_n


def test_reported_reasoning_tokens_win_over_the_estimate() -> None:
    usage = Usage(completion_tokens=10, reasoning_tokens=7)
    assert with_reasoning_tokens(usage, 3) is usage
    assert with_reasoning_tokens(Usage(completion_tokens=10), 40).reasoning_tokens == 10


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (503, "Loading model", UpstreamUnavailable),
        (503, "no slot available", UpstreamUnavailable),
        (
            500,
            "The model produced output that does not match the expected peg-native format",
            UpstreamServerError,
        ),
        (400, "request (2414 tokens) exceeds the available context size", UpstreamContextExceeded),
    ],
)
def test_server_failures_map_to_their_classes(
    status: int, message: str, expected: type[Exception]
) -> None:
    mapped = classify(error_for_status(status, f"local: upstream {status}: {message}"))
    assert type(mapped) is expected
    assert mapped.upstream_status == status


def test_loading_is_unavailable_not_a_failure() -> None:
    mapped = classify(error_for_status(503, "local: Loading model"))
    assert mapped.fallback and not mapped.counts_against_uptime and mapped.client_status == 503


def test_error_chunk_with_503_is_unavailable() -> None:
    with pytest.raises(UpstreamUnavailable):
        provider().parse_chunk(call(), b'{"error":{"code":503,"message":"Loading model"}}')


def test_streams_ask_for_connection_close() -> None:
    p = provider()
    assert p.request_headers(call(stream=True))["Connection"] == "close"
    assert "Connection" not in p.request_headers(call())
