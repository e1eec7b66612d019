"""Decoding a chat-completions body once, validating the fields the gateway reads.

Unknown fields stay in `ChatRequest.upstream_body` and reach the upstream untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.errors import BadRequest
from gateway.limits import MAX_JSON_DEPTH, MAX_MODEL_CHARS, MAX_USER_CHARS
from gateway.text import clean_text
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
OPENING_MESSAGES = 2  # system + first user message identify a conversation for cache affinity
MAX_FALLBACK_MODELS = 32  # entries in `models`


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
    except RecursionError as exc:
        raise BadRequest(TOO_DEEP) from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    # Counting brackets is C-speed; only a body with more of them than the limit is walked.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(TOO_DEEP)
    try:
        known = msgspec.convert(body, _Known)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request: {exc}", metadata={"field": _field_of(exc)}) from exc
    if not known.messages:
        raise BadRequest(
            "invalid request: `messages` must not be empty", metadata={"field": "messages"}
        )
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(known, name)
        if value is not None and value < 1:
            raise BadRequest(
                f"invalid request: `{name}` must be at least 1", metadata={"field": name}
            )
    if known.models is not None and len(known.models) > MAX_FALLBACK_MODELS:
        raise BadRequest(
            f"invalid request: `models` has more than {MAX_FALLBACK_MODELS} entries",
            metadata={"field": "models"},
        )
    requested = known.model or (known.models[0] if known.models else None)
    if not requested:
        raise BadRequest("invalid request: `model` is required", metadata={"field": "model"})
    requested = clean_text(requested, MAX_MODEL_CHARS)
    model, suffix_mode = split_mode(requested)
    prefs = known.provider or ProviderPreferences()
    mode: Mode = suffix_mode or default_mode
    fallback_models = tuple(
        split_mode(clean_text(m, MAX_MODEL_CHARS))[0]
        for m in (known.models or [])
        if m != requested
    )
    upstream_body = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
    user = upstream_body.get("user")
    if isinstance(user, str) and (len(user) > MAX_USER_CHARS or "\x00" in user):
        upstream_body["user"] = clean_text(user, MAX_USER_CHARS)
    debug = known.debug or {}
    route = RouteRequest(
        model=model,
        mode=mode,
        mode_from_suffix=suffix_mode is not None,
        preferences=prefs,
        fallback_models=tuple(m for m in fallback_models if m != model),
        parameters=frozenset(k for k in body if k in ROUTED_PARAMETERS),
        prompt_tokens=_estimate_prompt_tokens(raw),
        max_tokens=known.max_completion_tokens or known.max_tokens,
        stream=known.stream,
        affinity_key=_session_key(known.session_id or known.prompt_cache_key) or _opening_key(body),
        explain=explain_header or bool(debug.get("route")),
    )
    return ChatRequest(route, upstream_body, requested)


TOO_DEEP = f"request body is nested deeper than {MAX_JSON_DEPTH} levels"


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in a decoded body (iterative: no recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        todo.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _session_key(value: str | None) -> str | None:
    """A client's session id or cache key as a fixed-size digest: the affinity memory holds
    100,000 of them, so their size must not be the client's to choose."""
    if not value:
        return None
    digest = hashlib.blake2b(value.encode("utf-8", "replace"), digest_size=16)
    return "session:" + digest.hexdigest()


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
