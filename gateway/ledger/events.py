"""The generation event: everything the ledger stores about one client request.

Built on the request path from data already in hand; no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from providers.pricing import ZERO_COST, Cost
from providers.usage import Usage
from routing.executor import Attempt

if TYPE_CHECKING:
    from gateway.unit_of_work import UnitOfWork


@dataclass(slots=True)
class GenerationEvent:
    id: str
    created_at: datetime
    requested_model: str
    model: str
    mode: str
    streamed: bool
    api_key_id: str | None = None
    app_referer: str | None = None
    app_title: str | None = None
    provider: str | None = None
    endpoint_id: str | None = None
    price_version: str | None = None  # the catalog prices it was billed at (price_version.py)
    status: str = "ok"  # ok | error | cancelled
    http_status: int = 200
    error_message: str | None = None
    finish_reason: str | None = None  # normalized: stop, length, tool_calls, content_filter, error
    native_finish_reason: str | None = None
    cancelled: bool = False
    usage: Usage = field(default_factory=Usage)
    cost: Cost = ZERO_COST
    upstream_cost: Decimal | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    generation_s: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    explanation: dict[str, Any] | None = None
    session_id: str | None = None
    external_user: str | None = None  # sha256 of the client's `user`
    upstream_id: str | None = None  # the serving upstream's own response id

    @property
    def throughput(self) -> float | None:
        """Output tokens per second of generation time."""
        if not self.generation_s or self.usage.completion_tokens <= 0:
            return None
        return self.usage.completion_tokens / self.generation_s


class LedgerSink(Protocol):
    """Where the request path hands a finished generation; must not block on the database."""

    async def emit(self, event: GenerationEvent) -> None: ...

    def emit_into(self, work: UnitOfWork, event: GenerationEvent) -> None:
        """`emit`, as a write in the end-of-request unit of work (or at once, if it needs no
        I/O); a failure raises from `work.send()`."""
        ...
