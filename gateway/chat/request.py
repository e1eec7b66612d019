"""Decoding a chat-completions body once, validating the fields the gateway reads.

Unknown fields stay in `ChatRequest.upstream_body` and reach the upstream untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.errors import BadRequest
from routing.preferences import Mode, ProviderPreferences, RouteRequest, split_mode

# OpenRouter fields the gateway consumes; they are not forwarded upstream.
GATEWAY_FIELDS = frozenset(
    {"provider", "models", "route", "debug", "session_id", "transforms", "usage", "user_key"}
)
# Request fields that, when present, an endpoint must list in `supported_parameters`
# for `provider.require_parameters`.
ROUTED_PARAMETERS = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "reasoning",
        "include_reasoning",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "structured_outputs",
        "parallel_tool_calls",
        "min_p",
    }
)
CHARS_PER_TOKEN = 4  # rough prompt-size estimate for price limits, before the upstream counts
# The prompt's upper bound for a key's hold: every o200k token is at least one byte of the body
# (escapes only lengthen it), plus what gpt-oss's chat template adds around the messages.
TEMPLATE_TOKENS = 128  # gpt-oss's harmony preamble is ~70
MAX_CHOICES = 128  # `n` and `best_of` above this are refused (each multiplies the hold)
# Sent upstream by the executor as the one `max_tokens` cap it computed, never as given.
CAP_FIELDS = frozenset({"max_tokens", "max_completion_tokens"})
OPENING_MESSAGES = 2  # system + first user message identify a conversation for cache affinity


class _Message(msgspec.Struct):
    role: str


class _Known(msgspec.Struct):
    """The fields the gateway reads, with their types; anything else is passed through."""

    messages: list[_Message]
    model: str | None = None
    models: list[str] | None = None
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    best_of: int | None = None
    provider: ProviderPreferences | None = None
    session_id: str | None = None
    prompt_cache_key: str | None = None
    debug: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    route: RouteRequest
    upstream_body: dict[str, Any]  # the client's body minus gateway-only fields
    requested_model: str  # as the client wrote it, suffix included


_decoder = msgspec.json.Decoder()


def decode_chat_request(
    raw: bytes, default_mode: Mode = "balanced", explain_header: bool = False
) -> ChatRequest:
    """Parse and validate; raises `BadRequest` naming the offending field."""
    try:
        body = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        known = msgspec.convert(body, _Known)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request: {exc}", metadata={"field": _field_of(exc)}) from exc
    if not known.messages:
        raise BadRequest(
            "invalid request: `messages` must not be empty", metadata={"field": "messages"}
        )
    for name in ("max_tokens", "max_completion_tokens", "n", "best_of"):
        value = getattr(known, name)
        if value is not None and value < 1:
            raise BadRequest(
                f"invalid request: `{name}` must be at least 1", metadata={"field": name}
            )
    choices = max(known.n or 1, known.best_of or 1)
    if choices > MAX_CHOICES:
        field = "n" if (known.n or 1) == choices else "best_of"
        raise BadRequest(
            f"invalid request: `{field}` must be at most {MAX_CHOICES}", metadata={"field": field}
        )
    requested = known.model or (known.models[0] if known.models else None)
    if not requested:
        raise BadRequest("invalid request: `model` is required", metadata={"field": "model"})
    model, suffix_mode = split_mode(requested)
    prefs = known.provider or ProviderPreferences()
    mode: Mode = suffix_mode or default_mode
    fallback_models = tuple(split_mode(m)[0] for m in (known.models or []) if m != requested)
    upstream_body = {
        k: v for k, v in body.items() if k not in GATEWAY_FIELDS and k not in CAP_FIELDS
    }
    debug = known.debug or {}
    route = RouteRequest(
        model=model,
        mode=mode,
        mode_from_suffix=suffix_mode is not None,
        preferences=prefs,
        fallback_models=tuple(m for m in fallback_models if m != model),
        parameters=frozenset(k for k in body if k in ROUTED_PARAMETERS),
        prompt_tokens=_estimate_prompt_tokens(raw),
        max_tokens=completion_cap(known.max_tokens, known.max_completion_tokens),
        stream=known.stream,
        affinity_key=known.session_id or known.prompt_cache_key or _opening_key(body),
        explain=explain_header or bool(debug.get("route")),
        prompt_bound=len(raw) + TEMPLATE_TOKENS,
        choices=choices,
    )
    return ChatRequest(route, upstream_body, requested)


def completion_cap(max_tokens: int | None, max_completion_tokens: int | None) -> int | None:
    """The one rule for the two aliases: the smaller of those given. The executor sends it
    upstream as `max_tokens` (tightened by the endpoint), and the hold is priced from it."""
    if max_tokens is None or max_completion_tokens is None:
        return max_tokens if max_completion_tokens is None else max_completion_tokens
    return min(max_tokens, max_completion_tokens)


def _opening_key(body: dict[str, Any]) -> str | None:
    """A conversation's identity without a session id: a hash of its opening messages."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    digest = hashlib.blake2b(msgspec.json.encode(messages[:OPENING_MESSAGES]), digest_size=16)
    return "open:" + digest.hexdigest()


def _estimate_prompt_tokens(raw: bytes) -> int:
    return len(raw) // CHARS_PER_TOKEN


def _field_of(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    marker = "at `$."
    if marker in text:
        return text.split(marker, 1)[1].rstrip("`")
    return ""
