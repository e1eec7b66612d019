"""Shaping upstream answers for the client: gateway id, provider, exact usage and cost.

Non-streamed bodies are rewritten once; streamed chunks are stamped and passed on as they come.
"""

from __future__ import annotations

import os
import time
from typing import Any

from gateway.errors import error_object
from gateway.json_encoding import encode, json_numbers
from providers.pricing import Cost
from providers.usage import Usage

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "error"})


def new_generation_id() -> str:
    return f"gen-{int(time.time())}-{os.urandom(10).hex()}"


def usage_body(usage: Usage, cost: Cost) -> dict[str, Any]:
    return {**usage.to_openai(), **json_numbers(cost.to_openrouter())}


def normalize_finish_reason(native: Any) -> str | None:
    if native is None:
        return None
    text = str(native)
    if text in FINISH_REASONS:
        return text
    if text in ("eos", "end_turn", "stop_sequence"):
        return "stop"
    if text in ("max_tokens", "max_output_tokens"):
        return "length"
    if text in ("tool_use", "function_call"):
        return "tool_calls"
    return "stop"


def first_finish_reason(choices: Any) -> Any:
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason") is not None:
                return choice["finish_reason"]
    return None


def upstream_id_of(payload: dict[str, Any]) -> str | None:
    """The upstream's own id of its answer (before the gateway's replaces it)."""
    value = payload.get("id")
    return value[:200] if isinstance(value, str) and value else None


def stamp(payload: dict[str, Any], generation_id: str, model: str, provider: str) -> None:
    payload["id"] = generation_id
    payload["model"] = model
    payload["provider"] = provider


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + encode(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def error_chunk(
    generation_id: str,
    model: str,
    provider: str | None,
    status: int,
    message: str,
    reason: str = "upstream_mid_stream",
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """The chunk that ends a stream which failed after its first byte: the error envelope's
    `error` with `metadata.error_type`, on a chunk whose choice finishes with `error`."""
    error = error_object(status, message, reason, {**(metadata or {}), "provider_name": provider})
    error["metadata"]["error_type"] = error["type"]
    return sse(
        {
            "id": generation_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "provider": provider,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": ""},
                    "finish_reason": "error",
                    "native_finish_reason": "error",
                }
            ],
            "error": error,
        }
    )
