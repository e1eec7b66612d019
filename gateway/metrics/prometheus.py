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
from bisect import bisect_left
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
from providers.pricing import ZERO
from routing.stats import StatsSnapshot

if TYPE_CHECKING:
    from gateway.unit_of_work import UnitOfWork

FLUSH_INTERVAL_S = 0.25  # how stale a scrape may be; also bounds one fold (~1.5 µs an event)
MAX_PENDING = 50_000  # events held between flushes; past it the request path flushes itself
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
NO_PROVIDER = "none"  # label of generations no endpoint served (every attempt refused)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _Observations:
    """One histogram child's observations of a batch: a count per bucket and their sum, written
    with one `inc` per bucket that got any. `prometheus_client` has no batch `observe`; this
    writes the child's own bucket and sum values (`_buckets`, `_sum`, laid out so since 0.4) and
    falls back to `observe` per value where a version lays them out differently."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        bounds: list[float] | None = getattr(child, "_upper_bounds", None)
        buckets: list[Any] | None = getattr(child, "_buckets", None)
        self._bounds: list[float] | None = None
        self._counts: list[int] = []
        self._sum = 0.0
        if bounds and buckets and len(bounds) == len(buckets) and hasattr(child, "_sum"):
            self._bounds = list(bounds)
            self._counts = [0] * len(buckets)

    def add(self, value: float) -> None:
        if self._bounds is None:
            self._child.observe(value)
            return
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def write(self) -> None:
        if self._bounds is None:
            return
        child = self._child
        child._sum.inc(self._sum)
        for bucket, n in zip(child._buckets, self._counts, strict=True):
            if n:
                bucket.inc(n)


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
        # Summed per label set first: one `inc` per counter child and one per histogram bucket
        # for the whole batch (each costs a lock, and in multiprocess mode a write to its file),
        # so a flush of N events stays ~1 µs each and never stalls the loop for long.
        requests: Tally[tuple[str, str, str, str]] = Tally()
        attempts: Tally[tuple[str, str]] = Tally()
        tokens: dict[str, list[int]] = {}
        cost: dict[str, Decimal] = {}
        latency: dict[str, _Observations] = {}
        ttft: dict[str, _Observations] = {}
        for event in events:
            provider = event.provider or NO_PROVIDER
            requests[(event.model, provider, event.mode, event.status)] += 1
            for attempt in event.attempts:
                attempts[(attempt.provider, attempt.outcome)] += 1
            usage = event.usage
            counts = tokens.get(provider)
            if counts is None:
                counts = tokens[provider] = [0, 0, 0, 0]
            counts[0] += usage.prompt_tokens
            counts[1] += usage.completion_tokens
            counts[2] += usage.cached_tokens
            counts[3] += usage.reasoning_tokens
            cost[provider] = cost.get(provider, ZERO) + event.cost.total
            if event.provider is not None:
                seen = latency.get(provider)
                if seen is None:
                    seen = latency[provider] = _Observations(self._latency_child(provider))
                seen.add(event.latency_s)
                if event.ttft_s is not None and event.streamed:
                    seen = ttft.get(provider)
                    if seen is None:
                        seen = ttft[provider] = _Observations(self._ttft_child(provider))
                    seen.add(event.ttft_s)
        for request_labels, n in requests.items():
            self.requests.labels(*request_labels).inc(n)
        for attempt_labels, n in attempts.items():
            self.attempts.labels(*attempt_labels).inc(n)
        for provider, counts in tokens.items():
            for kind, n in zip(TOKEN_KINDS, counts, strict=True):
                self.tokens.labels(provider, kind).inc(n)  # 0 too: every kind has a series
        for provider, usd in cost.items():
            self.cost.labels(provider).inc(float(usd))
        for seen in (*latency.values(), *ttft.values()):
            seen.write()

    def _latency_child(self, provider: str) -> Any:
        child = self._latency_of.get(provider)
        if child is None:
            child = self._latency_of[provider] = self.latency.labels(provider)
        return child

    def _ttft_child(self, provider: str) -> Any:
        child = self._ttft_of.get(provider)
        if child is None:
            child = self._ttft_of[provider] = self.ttft.labels(provider)
        return child

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
