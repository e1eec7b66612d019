"""The `Provider` protocol: how the gateway talks to one kind of upstream.

Adapters implement it (`openai_compatible`, `llamacpp`); routing only sees this surface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from providers.catalog import Endpoint, Secret
from providers.usage import Usage

# Dialect fields that would let an upstream produce more than the `max_tokens` cap the gateway
# sends (llama.cpp reads `n_predict` before `max_tokens`; TGI's `max_new_tokens`; a second
# alias): adapters never forward them. Fields that only push output towards the cap
# (`ignore_eos`, vLLM's `min_tokens`) pass: the cap still bounds them.
OUTPUT_RAISING_FIELDS = frozenset({"n_predict", "max_new_tokens", "max_completion_tokens"})


def without_output_raisers(body: dict[str, Any]) -> dict[str, Any]:
    """`body` minus `OUTPUT_RAISING_FIELDS` (the same dict when it has none, the usual case)."""
    if OUTPUT_RAISING_FIELDS.isdisjoint(body):
        return body
    return {k: v for k, v in body.items() if k not in OUTPUT_RAISING_FIELDS}


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt limits, in seconds."""

    connect: float = 5.0
    first_token: float = 60.0  # until response headers (and, streaming, the first chunk)
    total: float = 600.0  # the whole attempt
    idle: float = 60.0  # the longest silence between two pieces of an answer's body


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    endpoint: Endpoint
    body: dict[str, Any]  # the client's body, already translated for this endpoint
    secret: Secret | None = field(default=None, repr=False)
    timeouts: Timeouts = Timeouts()
    # The client's own completion cap (None: it set none). The body's `max_tokens` is the cap
    # the gateway computed for this endpoint; a `reasoning.max_tokens` budget is a share of
    # what the client asked for, not of that.
    requested_max_tokens: int | None = None


@dataclass(slots=True)
class Completion:
    """A non-streamed answer."""

    body: dict[str, Any]
    usage: Usage
    ttft_s: float  # until the response headers
    latency_s: float  # until the whole body was read
    generation_s: float | None = None  # upstream-reported generation time, when it tells


@dataclass(slots=True)
class Chunk:
    """One parsed SSE event of a streamed answer; `usage` is set on the chunk that carries it."""

    data: dict[str, Any]
    usage: Usage | None = None


class Provider(Protocol):
    kind: str

    async def complete(self, call: UpstreamCall) -> Completion: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]: ...
