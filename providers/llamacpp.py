"""Adapter for llama.cpp's `llama-server` (run with `--jinja`): gpt-oss reasoning, timings, errors.

OpenAI-compatible underneath; a server's load and health are watched by `llamacpp_health`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import Any, cast

from providers.errors import UpstreamError, UpstreamUnavailable
from providers.openai_compatible import OpenAICompatibleProvider
from providers.provider import Chunk, Completion, UpstreamCall, without_output_raisers
from providers.reasoning import (
    EFFORT_ALIASES,
    EFFORTS,
    ReasoningRequest,
    estimate_reasoning_tokens,
    normalize_effort,
    reasoning_of,
    with_reasoning_tokens,
)
from providers.transport import UpstreamResponse
from providers.usage import MAX_REPORTED_TOKENS, Usage, normalize_usage

__all__ = [
    "EFFORTS",
    "EFFORT_ALIASES",
    "LlamaCppProvider",
    "ReasoningRequest",
    "estimate_reasoning_tokens",
    "normalize_effort",
    "reasoning_of",
    "with_reasoning_tokens",
]

# OpenRouter's reasoning fields: translated into chat_template_kwargs, never sent as such.
REASONING_FIELDS = frozenset({"reasoning", "include_reasoning", "reasoning_effort"})


def translate_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body llama-server gets: effort in `chat_template_kwargs`, history reasoning renamed."""
    wanted = reasoning_of(body)
    out = {k: v for k, v in body.items() if k not in REASONING_FIELDS}
    if wanted.effort is not None:
        kwargs = body.get("chat_template_kwargs")
        base = kwargs if isinstance(kwargs, dict) else {}
        out["chat_template_kwargs"] = {**base, "reasoning_effort": wanted.effort}
    messages = body.get("messages")
    if isinstance(messages, list) and any(_has_history_reasoning(m) for m in messages):
        out["messages"] = [
            {**m, "reasoning_content": m["reasoning"]} if _has_history_reasoning(m) else m
            for m in messages
        ]
    return out


def _has_history_reasoning(message: Any) -> bool:
    # llama.cpp renders an assistant turn's `reasoning_content` as gpt-oss's analysis channel.
    return (
        isinstance(message, dict)
        and isinstance(message.get("reasoning"), str)
        and "reasoning_content" not in message
    )


def rename_reasoning(part: dict[str, Any], exclude: bool) -> str:
    """Turn llama.cpp's `reasoning_content` (message or delta) into OpenRouter's `reasoning`.

    Returns the reasoning text found, also when `exclude` drops it from the answer.
    """
    text = part.pop("reasoning_content", None)
    if not isinstance(text, str):
        return ""
    if not exclude:
        part["reasoning"] = text
    return text


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return min(value, MAX_REPORTED_TOKENS)
    return 0


def usage_with_timings(usage: Usage, timings: Any) -> Usage:
    """Complete usage from llama.cpp's `timings`: cache hits (`cache_n`), prompt, predicted."""
    if not isinstance(timings, dict):
        return usage
    cache_n = _count(timings.get("cache_n"))
    prompt = max(usage.prompt_tokens, _count(timings.get("prompt_n")) + cache_n)
    cached = min(usage.cached_tokens or cache_n, prompt)
    completion = usage.completion_tokens or _count(timings.get("predicted_n"))
    if (prompt, cached, completion) == (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.completion_tokens,
    ):
        return usage
    return dataclasses.replace(
        usage, prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion
    )


def _positive(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf
    return float(value) if ok else None


def predicted_seconds(timings: Any) -> float | None:
    """How long decoding took after the first token (`predicted_ms`)."""
    if not isinstance(timings, dict):
        return None
    predicted_ms = _positive(timings.get("predicted_ms"))
    return None if predicted_ms is None else predicted_ms / 1000


def generation_seconds(timings: Any, completion_tokens: int) -> float | None:
    """Generation time such that tokens/s is llama.cpp's own `predicted_per_second`.

    llama.cpp rates the tokens after the first, so this is not quite `predicted_ms`.
    """
    if not isinstance(timings, dict):
        return None
    per_second = _positive(timings.get("predicted_per_second"))
    if per_second is not None and completion_tokens > 0:
        return completion_tokens / per_second
    return predicted_seconds(timings)


def classify(exc: UpstreamError) -> UpstreamError:
    """llama-server's own meaning of a status: 503 is loading or no free slot, not a failure.

    500 (e.g. the harmony parser: "model produced output that does not match the expected
    format") stays a server error that falls back; 400 (`exceed_context_size_error`) stays the
    client's fault.
    """
    if exc.upstream_status == 503 and not isinstance(exc, UpstreamUnavailable):
        return UpstreamUnavailable(
            exc.message, upstream_status=503, retry_after=exc.retry_after, body=exc.body
        )
    return exc


@contextmanager
def llamacpp_errors() -> Iterator[None]:
    """Re-raise an upstream error as the class llama-server means by it (see `classify`)."""
    try:
        yield
    except UpstreamError as exc:
        mapped = classify(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def _choices(payload: dict[str, Any]) -> list[dict[str, Any]]:
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict)]


def _other_chars(message: dict[str, Any]) -> int:
    content = message.get("content")
    size = len(content) if isinstance(content, str) else 0
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            size += len(arguments) if isinstance(arguments, str) else 0
    return size


class LlamaCppProvider(OpenAICompatibleProvider):
    """Speaks `llama-server`'s OpenAI-compatible chat completions, streaming and not."""

    kind = "llamacpp"

    def request_headers(self, call: UpstreamCall) -> dict[str, str]:
        headers = super().request_headers(call)
        if call.body.get("stream") is True:
            # llama-server closes the connection after every stream while saying keep-alive;
            # asking for close keeps the pool from reusing a socket that is about to die.
            headers["Connection"] = "close"
        return headers

    def translate(self, call: UpstreamCall) -> dict[str, Any]:
        return translate_body(without_output_raisers(call.body))

    async def _raise_for_status(self, call: UpstreamCall, resp: UpstreamResponse) -> None:
        with llamacpp_errors():
            await super()._raise_for_status(call, resp)

    def finish(
        self, call: UpstreamCall, payload: dict[str, Any], ttft: float, latency: float
    ) -> Completion:
        exclude = reasoning_of(call.body).exclude
        timings = payload.get("timings")
        usage = usage_with_timings(normalize_usage(payload.get("usage")), timings)
        reasoning_chars = other_chars = 0
        for choice in _choices(payload):
            message = choice.get("message")
            if isinstance(message, dict):
                reasoning_chars += len(rename_reasoning(message, exclude))
                other_chars += _other_chars(message)
        estimated = estimate_reasoning_tokens(usage.completion_tokens, reasoning_chars, other_chars)
        usage = with_reasoning_tokens(usage, estimated)
        decoding = predicted_seconds(timings)
        if decoding is not None:
            # The headers come after the whole answer; the first token came `decoding` earlier.
            ttft = max(latency - decoding, 0.0)
        generation = generation_seconds(timings, usage.completion_tokens)
        return Completion(payload, usage, ttft, latency, generation)

    def parse_chunk(self, call: UpstreamCall, data: bytes) -> Chunk:
        with llamacpp_errors():
            return super().parse_chunk(call, data)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        call = dataclasses.replace(call, body={**call.body, "stream": True})
        exclude = reasoning_of(call.body).exclude
        reasoning_chunks = 0  # llama.cpp streams about one chunk per generated token
        upstream = cast(AsyncGenerator[Chunk, None], super().stream(call))
        async with aclosing(upstream) as chunks:
            async for chunk in chunks:
                for choice in _choices(chunk.data):
                    delta = choice.get("delta")
                    if isinstance(delta, dict) and rename_reasoning(delta, exclude):
                        reasoning_chunks += 1
                if chunk.usage is not None:
                    usage = usage_with_timings(chunk.usage, chunk.data.get("timings"))
                    chunk.usage = with_reasoning_tokens(usage, reasoning_chunks)
                yield chunk
