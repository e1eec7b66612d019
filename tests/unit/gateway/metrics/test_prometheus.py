"""The request metrics: events recorded on the request path become the documented counters and
histograms once flushed, and the metered ledger hands every event on unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.ledger.events import GenerationEvent
from gateway.metrics.prometheus import (
    LATENCY_BUCKETS,
    TTFT_BUCKETS,
    GatewayMetrics,
    MeteredLedger,
)
from gateway.resp import Batch
from tests.unit.gateway.ledger.factories import make_event


def _values(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_events_become_counters_and_histograms() -> None:
    metrics = GatewayMetrics(breakers=lambda: {"groq": True, "together": False})
    for n in range(3):
        metrics.record(make_event(n))
    metrics.record(make_event(9, status="error", provider=None, streamed=False, attempts=[]))
    values = _values(metrics)
    ok = (("mode", "nitro"), ("model", "openai/gpt-oss-20b"), ("provider", "groq"))
    assert values[("gateway_requests_total", (*ok, ("status", "ok")))] == 3
    failed = (("mode", "nitro"), ("model", "openai/gpt-oss-20b"), ("provider", "none"))
    assert values[("gateway_requests_total", (*failed, ("status", "error")))] == 1
    assert values[("gateway_attempts_total", (("outcome", "http"), ("provider", "together")))] == 3
    assert values[("gateway_attempts_total", (("outcome", "ok"), ("provider", "groq")))] == 3
    assert values[("gateway_tokens_total", (("kind", "cached"), ("provider", "groq")))] == 3 * 1024
    assert values[("gateway_tokens_total", (("kind", "reasoning"), ("provider", "groq")))] == 120
    assert values[("gateway_latency_seconds_count", (("provider", "groq"),))] == 3
    assert values[("gateway_ttft_seconds_count", (("provider", "groq"),))] == 3
    cost = values[("gateway_cost_usd_total", (("provider", "groq"),))]
    assert abs(cost - 3 * 0.0001644) < 1e-12
    assert values[("gateway_breaker_open", (("provider", "groq"),))] == 1
    assert values[("gateway_breaker_open", (("provider", "together"),))] == 0


def test_a_batched_fold_puts_every_observation_where_observe_would() -> None:
    """The fold writes each histogram bucket once per batch; the buckets, count and sum must be
    what one `observe` per event gives (values on, below and above every boundary)."""
    latencies = [0.0, 0.05, 0.0500001, 0.1, 0.7, 1.0, 2.5, 59.9, 120.0, 300.0, 301.0, 1e9]
    metrics = GatewayMetrics()
    for n, latency in enumerate(latencies):
        metrics.record(make_event(n, latency_s=latency, ttft_s=latency / 10))
    got = _values(metrics)
    reference = CollectorRegistry()
    expected_latency = Histogram(
        "gateway_latency_seconds", "", ("provider",), buckets=LATENCY_BUCKETS, registry=reference
    ).labels("groq")
    expected_ttft = Histogram(
        "gateway_ttft_seconds", "", ("provider",), buckets=TTFT_BUCKETS, registry=reference
    ).labels("groq")
    for latency in latencies:
        expected_latency.observe(latency)
        expected_ttft.observe(latency / 10)
    wanted = {}
    for family in text_string_to_metric_families(generate_latest(reference).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                wanted[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert wanted  # the reference has buckets, counts and sums
    for key, value in wanted.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_apps_in_one_process_keep_their_own_samples() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.record(make_event(1))
    assert not any(name == "gateway_requests_total" for name, _ in _values(second))


class _Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def emit(self, event: GenerationEvent) -> None:
        self.events.append(event)

    def emit_into(self, batch: Batch, event: GenerationEvent) -> None:
        self.events.append(event)


async def test_the_metered_ledger_counts_and_hands_on() -> None:
    metrics, sink = GatewayMetrics(), _Sink()
    ledger = MeteredLedger(sink, metrics)
    event = make_event(1)
    ledger.emit_into(Batch(), event)
    await ledger.emit(make_event(2))
    assert sink.events[0] is event and len(sink.events) == 2
    total = sum(v for (name, _), v in _values(metrics).items() if name == "gateway_requests_total")
    assert total == 2
