"""What running a plan produces: attempts, skipped endpoints, the served answer or the failed
generation (an opened stream is `routing.stream`). Plain records; the executor makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from providers.catalog import Endpoint
from providers.errors import UpstreamError
from providers.provider import Completion


@dataclass(slots=True)
class Attempt:
    """One upstream call and how it ended."""

    endpoint_id: str
    provider: str
    started_at: datetime
    latency_s: float = 0.0
    ttft_s: float | None = None
    outcome: str = "ok"  # "ok", "error_finish", "cancelled" or the error class's outcome
    status: int | None = None
    error_class: str | None = None
    message: str | None = None
    streamed: bool = False
    completion_tokens: int | None = None
    generation_s: float | None = None  # time spent generating output, for throughput
    retry_after_s: float | None = None

    def failed(self, error: UpstreamError) -> None:
        """End the attempt with an upstream failure: its outcome, status and detail."""
        self.outcome = error.outcome
        self.status = error.upstream_status
        self.error_class = type(error).__name__
        self.message = error.message
        self.retry_after_s = error.retry_after


@dataclass(frozen=True, slots=True)
class Skip:
    """An endpoint of the plan that was not called, and why."""

    endpoint_id: str
    reason: str
    retry_after: float | None = None  # when it is expected back, if known


class GenerationFailed(Exception):
    """Every allowed attempt failed; `last` is what the client is told (its `client_status`,
    `code`, `message`). Routing's record of the failure: the gateway wraps it, never edits it."""

    def __init__(
        self, last: UpstreamError, attempts: list[Attempt], skipped: list[Skip] | None = None
    ) -> None:
        super().__init__(last.message)
        self.last = last
        self.attempts = attempts
        self.skipped = skipped or []


@dataclass(slots=True)
class Served:
    endpoint: Endpoint
    completion: Completion
    attempts: list[Attempt]
    skipped: list[Skip] = field(default_factory=list)
