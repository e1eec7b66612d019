from __future__ import annotations

from typing import Any

import pytest

from providers.catalog import Endpoint, Price
from providers.errors import (
    UpstreamBadRequest,
    UpstreamContextExceeded,
    error_for_status,
)
from providers.openai_compatible import OpenAICompatibleProvider
from providers.parameters import dropped_parameters, upstream_body
from providers.provider import UpstreamCall
from providers.reasoning import effort_of, translate_reasoning

HOST = Endpoint(
    model="m/x",
    provider="host",
    base_url="http://127.0.0.1:9/v1",
    upstream_model="x",
    context_length=1000,
    price=Price(prompt="0", completion="0"),  # type: ignore[arg-type]
    supported_parameters=("max_tokens", "reasoning"),
)


@pytest.mark.parametrize(
    ("body", "effort"),
    [
        ({"reasoning": {"effort": "low"}}, "low"),
        ({"reasoning": {"effort": "minimal"}}, "low"),
        ({"reasoning": {"enabled": False}}, "low"),
        ({"reasoning": {"max_tokens": 50}, "max_tokens": 100}, "medium"),
        ({"reasoning": {"max_tokens": 10}, "max_tokens": 100}, "low"),
        ({"reasoning": {"max_tokens": 9000}}, "high"),
        ({"reasoning": {"enabled": True}}, None),
        ({"reasoning_effort": "medium"}, "medium"),
    ],
)
def test_effort_of_openrouter_reasoning(body: dict[str, Any], effort: str | None) -> None:
    assert effort_of(body) == effort


def test_translate_reasoning_keeps_bodies_without_it_untouched() -> None:
    body = {"messages": []}
    assert translate_reasoning(body, None) is body
    out = translate_reasoning({"messages": [], "reasoning": {"exclude": True}}, None)
    assert out == {"messages": []}


def test_a_budget_is_a_share_of_the_clients_cap_not_of_the_cap_sent() -> None:
    # The executor always sends a `max_tokens` (the endpoint's room); the budget is measured
    # against what the client asked for, or absolutely when it asked for no cap.
    sent = {"messages": [], "max_tokens": 131_000, "reasoning": {"max_tokens": 8192}}
    assert translate_reasoning(sent, None)["reasoning_effort"] == "high"
    assert translate_reasoning(sent, 10_000)["reasoning_effort"] == "high"
    assert translate_reasoning(sent, 100_000)["reasoning_effort"] == "low"
    call = UpstreamCall(HOST, sent, requested_max_tokens=16_000)
    assert OpenAICompatibleProvider(None).translate(call)["reasoning_effort"] == "medium"  # type: ignore[arg-type]


def _call(**body: Any) -> UpstreamCall:
    return UpstreamCall(HOST, {"model": "x", "messages": [], **body})


def test_reasoning_output_is_mapped_to_reasoning_and_counted() -> None:
    provider = OpenAICompatibleProvider(client=None)  # type: ignore[arg-type]
    payload = {
        "choices": [{"message": {"content": "abcd", "reasoning_content": "abcdefghijkl"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 8},
    }
    done = provider.finish(_call(), payload, 0.1, 0.2)
    message = done.body["choices"][0]["message"]
    assert message["reasoning"] == "abcdefghijkl" and "reasoning_content" not in message
    assert done.usage.reasoning_tokens == 6  # 12 of 16 characters of 8 tokens
    hidden = provider.finish(
        _call(reasoning={"exclude": True}),
        {"choices": [{"message": {"content": "a", "reasoning": "why"}}]},
        0.1,
        0.2,
    )
    assert "reasoning" not in hidden.body["choices"][0]["message"]
    chunk = provider.parse_chunk(_call(), b'{"choices":[{"delta":{"reasoning_content":"hm"}}]}')
    assert chunk.data["choices"][0]["delta"] == {"reasoning": "hm"}


def test_unsupported_parameters_dropped_but_never_the_length_bounds() -> None:
    params = frozenset({"max_tokens", "max_completion_tokens", "temperature", "reasoning"})
    assert dropped_parameters(HOST, params) == {"temperature"}
    body = upstream_body(HOST, {"temperature": 1, "max_completion_tokens": 5}, params)
    assert body == {"max_completion_tokens": 5, "model": "x"}
    undeclared = Endpoint(
        **{**{f: getattr(HOST, f) for f in HOST.__struct_fields__}, "supported_parameters": ()}
    )
    assert dropped_parameters(undeclared, params) == frozenset()


@pytest.mark.parametrize(
    ("message", "body", "cls"),
    [
        ("too long", {"error": {"code": "context_length_exceeded"}}, UpstreamContextExceeded),
        ("x", {"error": {"type": "exceed_context_size_error"}}, UpstreamContextExceeded),
        ("this model's maximum context length is 8192 tokens", None, UpstreamContextExceeded),
        ("temperature must be at most 2", None, UpstreamBadRequest),
    ],
)
def test_context_length_400_is_its_own_class(message: str, body: Any, cls: type) -> None:
    error = error_for_status(400, message, body=body)
    assert type(error) is cls and error.client_status == 400
