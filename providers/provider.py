"""The `Provider` protocol: how the gateway talks to one kind of upstream.

Adapters implement it (`openai_compatible`, `llamacpp`); routing only sees this surface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from providers.catalog import Endpoint, Secret
from providers.usage import Usage


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
