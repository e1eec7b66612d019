"""Decoding a chat-completions body once, validating the fields the gateway reads.

Unknown fields stay in `ChatRequest.upstream_body` and reach the upstream untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.chat.provider_object import decode_provider
from gateway.chat.relay import new_generation_id
from gateway.errors import BadRequest
from gateway.limits import MAX_ID_CHARS, MAX_JSON_DEPTH, MAX_MODEL_CHARS
from gateway.text import clean_text
from providers.parameters import ROUTED_PARAMETERS
from routing.preferences import NO_PREFERENCES, Mode, RouteRequest, split_mode

# OpenRouter fields the gateway consumes; they are not forwarded upstream.
GATEWAY_FIELDS = frozenset(
    {
        "provider",
        "models",
        "route",
        "debug",
        "session_id",
        "transforms",
        "usage",
        "user_key",
        "preset",
        "plugins",
    }
)
# OpenRouter features the gateway doesn't have: refused rather than silently dropped.
REFUSED = {
    "preset": "presets are stored OpenRouter account settings; this gateway has none",
    "plugins": "plugins (web search, file parsing, response healing) are not available here",
}
CHARS_PER_TOKEN = 4  # rough prompt-size estimate for price limits, before the upstream counts
# The prompt's upper bound for a key's hold: every o200k token is at least one byte of the body
# (escapes only lengthen it), plus what gpt-oss's chat template adds around the messages.
TEMPLATE_TOKENS = 128  # gpt-oss's harmony preamble is ~70
MAX_CHOICES = 128  # `n` and `best_of` above this are refused (each multiplies the hold)
# Sent upstream by the executor as the one `max_tokens` cap it computed, never as given.
CAP_FIELDS = frozenset({"max_tokens", "max_completion_tokens"})
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
    n: int | None = None
    best_of: int | None = None
    provider: Any = None  # read leniently by `decode_provider`
    route: Any = None
    transforms: Any = None
    session_id: str | None = None
    prompt_cache_key: str | None = None
    debug: dict[str, Any] | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    route: RouteRequest
    upstream_body: dict[str, Any]  # the client's body minus gateway-only fields
    requested_model: str  # as the client wrote it, suffix included
    session_id: str | None = None  # `session_id` in the body, else the `x-session-id` header
    external_user: str | None = None  # the client's `user`, hashed (also what upstreams get)
    # Known before any routing, so a stream that commits its headers early can carry it.
    generation_id: str = field(default_factory=new_generation_id)


_decoder = msgspec.json.Decoder()


def decode_chat_request(
    raw: bytes,
    default_mode: Mode = "balanced",
    explain_header: bool = False,
    session_header: str | None = None,
) -> ChatRequest:
    """Parse and validate; raises `BadRequest` naming the offending field."""
    body = _parse(raw)
    known = _validated(body)
    _refuse_unsupported(body, known.transforms)
    provider, ignored = decode_provider(known.provider, known.route)
    choices = _choices(known)
    requested = _requested_model(known)
    model, suffix_mode = split_mode(requested)
    session = _bounded("session_id", known.session_id or session_header or None)
    external_user = _hashed(_bounded("user", known.user))
    route = RouteRequest(
        model=model,
        mode=suffix_mode or default_mode,
        mode_from_suffix=suffix_mode is not None,
        preferences=provider or NO_PREFERENCES,
        fallback_models=_fallback_models(known.models, requested, model),
        parameters=frozenset(k for k in body if k in ROUTED_PARAMETERS),
        prompt_tokens=_estimate_prompt_tokens(raw),
        max_tokens=completion_cap(known.max_tokens, known.max_completion_tokens),
        stream=known.stream,
        affinity_key=_session_key(session or known.prompt_cache_key) or _opening_key(body),
        continued=_continued(body),
        explain=explain_header or _debug_route(known.debug),
        ignored=tuple(ignored.items()),
        prompt_bound=len(raw) + TEMPLATE_TOKENS,
        choices=choices,
    )
    return ChatRequest(
        route, _upstream_body(body, external_user), requested, session, external_user
    )


def _parse(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, nested no deeper than `MAX_JSON_DEPTH`."""
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
    return body


def _validated(body: dict[str, Any]) -> _Known:
    """The fields the gateway reads, typed and within their bounds."""
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
    if known.models is not None and len(known.models) > MAX_FALLBACK_MODELS:
        raise BadRequest(
            f"invalid request: `models` has more than {MAX_FALLBACK_MODELS} entries",
            metadata={"field": "models"},
        )
    return known


def _choices(known: _Known) -> int:
    """Completions per request (`n`, `best_of`), at most `MAX_CHOICES`."""
    choices = max(known.n or 1, known.best_of or 1)
    if choices > MAX_CHOICES:
        field = "n" if (known.n or 1) == choices else "best_of"
        raise BadRequest(
            f"invalid request: `{field}` must be at most {MAX_CHOICES}", metadata={"field": field}
        )
    return choices


def _requested_model(known: _Known) -> str:
    """`model`, else the first of `models`, as the client wrote it (suffix included)."""
    requested = known.model or (known.models[0] if known.models else None)
    if not requested:
        raise BadRequest("invalid request: `model` is required", metadata={"field": "model"})
    return clean_text(requested, MAX_MODEL_CHARS)


def _fallback_models(models: list[str] | None, requested: str, model: str) -> tuple[str, ...]:
    """`models` without their mode suffixes, the requested model left out."""
    fallbacks = (
        split_mode(clean_text(m, MAX_MODEL_CHARS))[0] for m in models or () if m != requested
    )
    return tuple(m for m in fallbacks if m != model)


def _upstream_body(body: dict[str, Any], external_user: str | None) -> dict[str, Any]:
    """The client's body minus gateway-only fields and the completion caps."""
    upstream = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS and k not in CAP_FIELDS}
    if external_user is not None:
        upstream["user"] = external_user  # upstreams never see the raw identifier
    return upstream


def _debug_route(debug: dict[str, Any] | None) -> bool:
    return bool(debug and debug.get("route"))


def _bounded(name: str, value: str | None) -> str | None:
    if value is not None and len(value) > MAX_ID_CHARS:
        raise BadRequest(
            f"invalid request: `{name}` is longer than {MAX_ID_CHARS} characters",
            metadata={"field": name},
        )
    return value


def _hashed(user: str | None) -> str | None:
    """What the ledger and upstreams keep of the client's `user`: its sha256, hex."""
    if not user:
        return None
    return hashlib.sha256(user.encode()).hexdigest()


def _refuse_unsupported(body: dict[str, Any], transforms: Any) -> None:
    for name, why in REFUSED.items():
        if body.get(name) not in (None, [], {}, ""):
            raise BadRequest(f"`{name}` is not supported: {why}", metadata={"field": name})
    if transforms is None or transforms == []:
        return  # no transforms: OpenRouter's way of turning its default ones off
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise BadRequest(
            "invalid request: `transforms` must be a list of strings",
            metadata={"field": "transforms"},
        )
    raise BadRequest(
        f"`transforms` {transforms!r} is not supported: the gateway never rewrites a "
        "conversation; shorten it or pick a model with a longer context",
        metadata={"field": "transforms"},
    )


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


def completion_cap(max_tokens: int | None, max_completion_tokens: int | None) -> int | None:
    """The one rule for the two aliases: the smaller of those given. The executor sends it
    upstream as `max_tokens` (tightened by the endpoint), and the hold is priced from it."""
    if max_tokens is None or max_completion_tokens is None:
        return max_tokens if max_completion_tokens is None else max_completion_tokens
    return min(max_tokens, max_completion_tokens)


def _continued(body: dict[str, Any]) -> bool:
    """More than the opening messages: a later turn of a conversation, not its first."""
    messages = body.get("messages")
    return isinstance(messages, list) and len(messages) > OPENING_MESSAGES


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
