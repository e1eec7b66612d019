"""The request's share of the worst case: one rule for the cap aliases, `n`/`best_of` as a
multiplier, and a prompt bound that never under-counts a real o200k tokenizer."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.chat.request import decode_chat_request
from gateway.errors import BadRequest
from gateway.keys.worst_case import worst_case_of
from providers.catalog import Endpoint, Price
from providers.llamacpp import LlamaCppProvider
from providers.openai_compatible import OpenAICompatibleProvider
from providers.provider import UpstreamCall
from providers.tokenizer import count_tokens, prompt_tokens
from routing.planner import Plan


def body(content: str = "hi", **extra: object) -> bytes:
    return json.dumps(
        {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": content}], **extra}
    ).encode()


def test_the_smaller_alias_is_the_cap_and_neither_is_forwarded_as_given() -> None:
    decoded = decode_chat_request(body(max_tokens=20000, max_completion_tokens=1))
    assert decoded.route.max_tokens == 1
    assert "max_tokens" not in decoded.upstream_body
    assert "max_completion_tokens" not in decoded.upstream_body
    assert decode_chat_request(body(max_completion_tokens=7)).route.max_tokens == 7
    assert decode_chat_request(body(max_tokens=9)).route.max_tokens == 9


def test_n_and_best_of_multiply_the_hold() -> None:
    ep = Endpoint(
        model="openai/gpt-oss-20b",
        provider="p",
        base_url="http://x",
        upstream_model="m",
        context_length=100000,
        price=Price(prompt=Decimal(0), completion=Decimal(1)),
    )
    one = decode_chat_request(body(max_tokens=100)).route
    four = decode_chat_request(body(max_tokens=100, n=4)).route
    five = decode_chat_request(body(max_tokens=100, n=2, best_of=5)).route
    holds = [worst_case_of(Plan(r, "balanced", (ep,))) for r in (one, four, five)]
    assert holds == [Decimal("0.0001"), Decimal("0.0004"), Decimal("0.0005")]


@pytest.mark.parametrize("field", ["n", "best_of"])
def test_absurd_choice_counts_are_refused(field: str) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_chat_request(body(**{field: 100000}))
    assert refused.value.metadata["field"] == field


def test_adapters_strip_the_fields_that_lift_the_cap() -> None:
    ep = Endpoint(
        model="m",
        provider="p",
        base_url="http://x",
        upstream_model="m",
        context_length=10,
        price=Price(prompt=Decimal(0), completion=Decimal(0)),
    )
    sent = {
        "messages": [],
        "max_tokens": 5,
        "n_predict": -1,
        "ignore_eos": True,
        "min_tokens": 99,
        "max_completion_tokens": 999,
        "temperature": 0.5,
    }
    call = UpstreamCall(ep, sent)
    for adapter in (OpenAICompatibleProvider(None), LlamaCppProvider(None)):  # type: ignore[arg-type]
        translated = adapter.translate(call)
        assert translated["max_tokens"] == 5 and translated["temperature"] == 0.5
        assert not {"n_predict", "max_completion_tokens"} & set(translated)
        assert translated["ignore_eos"] is True  # bounded by the one cap, which stays


TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 20,
    "中文字符测试，一个很长的句子。日本語のテキストも。한국어 문장도 있습니다." * 20,
    "😀🎉🚀👩‍👩‍👧‍👦🏳️‍🌈" * 50,
    "31415926535897932384626433832795028841971693993751" * 20,
    "".join(chr(c) for c in range(33, 127)) * 10,
    '\u0000\u0001\t\n\r"\\' * 40,
]


@pytest.mark.parametrize("text", TEXTS, ids=["english", "cjk", "emoji", "digits", "ascii", "ctl"])
def test_the_prompt_bound_never_under_counts_a_real_tokenizer(text: str) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    raw = json.dumps({"model": "m", "messages": messages}, ensure_ascii=False).encode()
    route = decode_chat_request(raw).route
    assert route.prompt_bound >= prompt_tokens(messages)
    assert route.prompt_bound >= count_tokens(text)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=400), st.booleans())
def test_the_prompt_bound_holds_for_any_text(text: str, ascii_only: bool) -> None:
    messages = [{"role": "user", "content": text}]
    raw = json.dumps({"model": "m", "messages": messages}, ensure_ascii=ascii_only).encode()
    assert decode_chat_request(raw).route.prompt_bound >= prompt_tokens(messages)
