"""Per-request Prometheus metrics through `prometheus_client`, correct across worker processes.

The request path only appends the finished generation's ledger event to a list (~0.1 µs,
`python -m benchmarks.metrics`); a background task (and every scrape) turns the pending
events into counter and histogram updates. With `PROMETHEUS_MULTIPROC_DIR` set (`gateway
serve --workers N` sets it), every worker writes its own files and a scrape of any worker sums
them all (`prometheus_client`'s multiprocess mode). Not a place for the ledger's own gauges
(`gateway.ledger.metrics`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from gateway.ledger.events import GenerationEvent, LedgerSink
from gateway.metrics.multiproc import MULTIPROC_ENV
from providers.background import stop_task
from providers.catalog import Catalog
from routing.stats import StatsSnapshot

if TYPE_CHECKING:
    from gateway.unit_of_work import UnitOfWork

FLUSH_INTERVAL_S = 0.5  # how stale a worker's share of a scrape may be
MAX_PENDING = 50_000  # events held between flushes; past it the request path flushes itself
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
NO_PROVIDER = "none"  # label of generations no endpoint served (every attempt refused)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class GatewayMetrics:
    """The gateway's request metrics: `record` on the request path, `flush` in the background,
    `render` for a scrape."""

    def __init__(self, breakers: Callable[[], dict[str, bool]] | None = None) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # Private registry: several apps in one process (tests) never share samples. In
        # multiprocess mode the values live in the directory's files and are read from there.
        self._registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self._registry
        self.requests = Counter(
            "gateway_requests",
            "Generations by model, serving provider, mode and status (ok, error, cancelled)",
            ("model", "provider", "mode", "status"),
            registry=registry,
        )
        self.attempts = Counter(
            "gateway_attempts",
            "Upstream attempts by provider and outcome (ok, http, timeout, reset, ...)",
            ("provider", "outcome"),
            registry=registry,
        )
        self.ttft = Histogram(
            "gateway_ttft_seconds",
            "Time to first token of streamed generations, by serving provider",
            ("provider",),
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_latency_seconds",
            "Generation latency, request to last byte, by serving provider",
            ("provider",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens by provider and kind (prompt, completion, cached, reasoning)",
            ("provider", "kind"),
            registry=registry,
        )
        self.cost = Counter(
            "gateway_cost_usd",
            "What generations cost, in USD (the ledger holds the exact figures)",
            ("provider",),
            registry=registry,
        )
        self.breaker_open = Gauge(
            "gateway_breaker_open",
            "1 while an endpoint of the provider has its circuit breaker open (any worker)",
            ("provider",),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._breakers = breakers
        self._pending: list[GenerationEvent] = []
        # Label children by provider: `labels()` costs ~2 µs a call, a dict lookup far less.
        self._latency_of: dict[str, Any] = {}
        self._ttft_of: dict[str, Any] = {}

    # -- the request path

    def record(self, event: GenerationEvent) -> None:
        pending = self._pending
        pending.append(event)
        if len(pending) >= MAX_PENDING:
            self.flush()

    # -- off the request path

    def flush(self) -> None:
        """Fold the pending events into the metrics (counters summed per label set first)."""
        events, self._pending = self._pending, []
        if events:
            self._fold(events)
        if self._breakers is not None:
            for provider, is_open in self._breakers().items():
                self.breaker_open.labels(provider).set(int(is_open))

    def _fold(self, events: Iterable[GenerationEvent]) -> None:
        requests: Tally[tuple[str, str, str, str]] = Tally()
        attempts: Tally[tuple[str, str]] = Tally()
        tokens: Tally[tuple[str, str]] = Tally()
        cost: dict[str, Decimal] = {}
        for event in events:
            provider = event.provider or NO_PROVIDER
            requests[(event.model, provider, event.mode, event.status)] += 1
            for attempt in event.attempts:
                attempts[(attempt.provider, attempt.outcome)] += 1
            usage = event.usage
            tokens[(provider, "prompt")] += usage.prompt_tokens
            tokens[(provider, "completion")] += usage.completion_tokens
            tokens[(provider, "cached")] += usage.cached_tokens
            tokens[(provider, "reasoning")] += usage.reasoning_tokens
            cost[provider] = cost.get(provider, Decimal(0)) + event.cost.total
            if event.provider is not None:
                latency = self._latency_of.get(provider)
                if latency is None:
                    latency = self._latency_of[provider] = self.latency.labels(provider)
                latency.observe(event.latency_s)
                if event.ttft_s is not None and event.streamed:
                    ttft = self._ttft_of.get(provider)
                    if ttft is None:
                        ttft = self._ttft_of[provider] = self.ttft.labels(provider)
                    ttft.observe(event.ttft_s)
        for request_labels, n in requests.items():
            self.requests.labels(*request_labels).inc(n)
        for attempt_labels, n in attempts.items():
            self.attempts.labels(*attempt_labels).inc(n)
        for token_labels, n in tokens.items():
            self.tokens.labels(*token_labels).inc(n)
        for provider, usd in cost.items():
            self.cost.labels(provider).inc(float(usd))

    def render(self) -> bytes:
        """The exposition text: this process's pending events folded in, then every worker's
        samples (multiprocess) or this process's."""
        self.flush()
        if not self.multiprocess:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """Flush, and in multiprocess mode retire this worker's live gauges."""
        self.flush()
        if self.multiprocess:
            prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class MeteredLedger:
    """A `LedgerSink` that counts each generation for Prometheus, then hands it on."""

    def __init__(self, ledger: LedgerSink, metrics: GatewayMetrics) -> None:
        self._ledger = ledger
        self._record = metrics.record

    async def emit(self, event: GenerationEvent) -> None:
        self._record(event)
        await self._ledger.emit(event)

    def emit_into(self, work: UnitOfWork, event: GenerationEvent) -> None:
        self._record(event)
        self._ledger.emit_into(work, event)


def open_breakers(
    catalog: Catalog, snapshot: Callable[[], StatsSnapshot]
) -> Callable[[], dict[str, bool]]:
    """Per provider: whether any of its endpoints has an open breaker in this worker's view."""

    def providers() -> dict[str, bool]:
        current = snapshot()
        now = time.time()
        result = {endpoint.provider: False for endpoint in catalog.endpoints}
        for endpoint in catalog.endpoints:
            state = current.breaker(endpoint.id)
            if state is not None and state.phase(now) == "open":
                result[endpoint.provider] = True
        return result

    return providers


async def _flush_every(metrics: GatewayMetrics, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        metrics.flush()


@asynccontextmanager
async def open_metrics(
    breakers: Callable[[], dict[str, bool]] | None = None,
    interval_s: float = FLUSH_INTERVAL_S,
) -> AsyncIterator[GatewayMetrics]:
    """The metrics with their background flush, for the lifespan; flushed again at the end."""
    metrics = GatewayMetrics(breakers)
    task = asyncio.create_task(_flush_every(metrics, interval_s), name="prometheus-flush")
    try:
        yield metrics
    finally:
        await stop_task(task)
        metrics.close()
