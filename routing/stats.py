"""Live stats as routing reads them: per-endpoint figures in an immutable snapshot.

Pure data and the log-bucket histogram they come from; tallying and storage live elsewhere
(`routing.buckets`, `routing.stats_store`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from routing.breaker import BreakerState

# Histogram bins grow by RATIO: any percentile is within ~10% of the true value, and a
# histogram is a bounded handful of counters however many samples it holds.
RATIO = 1.2
_LOG_RATIO = math.log(RATIO)
MAX_BIN = 120
TTFT_FLOOR_MS = 1.0  # bin 0 holds everything at or below the floor
THROUGHPUT_FLOOR = 0.1  # tokens/s
QUANTILES = (0.50, 0.75, 0.90, 0.99)


def bin_of(value: float, floor: float) -> int:
    """The histogram bin holding `value`; bin 0 is `<= floor`."""
    if value <= floor:
        return 0
    return min(int(math.log(value / floor) / _LOG_RATIO) + 1, MAX_BIN)


def bin_value(index: int, floor: float) -> float:
    """The geometric middle of a bin: what a sample in it is reported as."""
    if index <= 0:
        return floor
    return floor * math.pow(RATIO, index - 0.5)


@dataclass(frozen=True, slots=True)
class Measured:
    """p50/p75/p90/p99 of one measured figure (the client's thresholds are
    `routing.preferences.Percentiles`)."""

    p50: float
    p75: float
    p90: float
    p99: float

    def get(self, name: str) -> float:
        value: float = getattr(self, name)
        return value

    def to_json(self, digits: int = 1) -> dict[str, float]:
        return {
            "p50": round(self.p50, digits),
            "p75": round(self.p75, digits),
            "p90": round(self.p90, digits),
            "p99": round(self.p99, digits),
        }


def percentiles(counts: Mapping[int, int], floor: float) -> Measured | None:
    """p50/p75/p90/p99 of a histogram (bin -> count); None when it is empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    bins = sorted(counts)
    values: list[float] = []
    seen, i = 0, 0
    for q in QUANTILES:
        rank = q * total
        while i < len(bins) and seen + counts[bins[i]] < rank:
            seen += counts[bins[i]]
            i += 1
        values.append(bin_value(bins[min(i, len(bins) - 1)], floor))
    return Measured(*values)


@dataclass(frozen=True, slots=True)
class Counts:
    """Attempt outcomes in one window. Rate limiting is neither success nor error."""

    ok: int = 0
    errors: int = 0
    rate_limited: int = 0

    @property
    def requests(self) -> int:
        return self.ok + self.errors

    @property
    def uptime(self) -> float | None:
        """success / (success + errors); None before any counted attempt."""
        total = self.ok + self.errors
        return self.ok / total if total else None


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """One endpoint's rolling figures, as of the snapshot that holds it."""

    endpoint_id: str
    windows: Mapping[str, Counts]  # uptime window label ("30s", "5m", ...) -> counts
    recent: Counts  # the outage window, counting only since the endpoint last recovered
    rolling: Counts = Counts()  # the latency window (30 min by default)
    recovered: bool = False  # came back from an outage within the outage window
    ttft_ms: Measured | None = None  # time to first token (streamed attempts)
    latency_ms: Measured | None = None  # end to end
    throughput: Measured | None = None  # output tokens / generation second
    samples: int = 0  # successful attempts in the latency window

    def uptime(self, label: str) -> float | None:
        counts = self.windows.get(label)
        return counts.uptime if counts is not None else None

    def to_json(self) -> dict[str, Any]:
        """Figures for the endpoints listing and dashboards (uptime in percent, as OpenRouter)."""
        body: dict[str, Any] = {}
        for label, counts in self.windows.items():
            up = counts.uptime
            body[f"uptime_last_{label}"] = None if up is None else round(up * 100, 2)
            body[f"requests_last_{label}"] = counts.requests
            body[f"rate_limited_last_{label}"] = counts.rate_limited
        body["ttft_ms"] = self.ttft_ms.to_json() if self.ttft_ms else None
        body["latency_ms"] = self.latency_ms.to_json() if self.latency_ms else None
        body["throughput"] = self.throughput.to_json() if self.throughput else None
        body["samples"] = self.samples
        return body


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Everything routing knows about endpoint health at one moment; replaced, never mutated."""

    taken_at: float = 0.0  # unix seconds
    endpoints: Mapping[str, EndpointStats] = field(default_factory=lambda: _EMPTY)
    breakers: Mapping[str, BreakerState] = field(default_factory=lambda: _EMPTY)

    def get(self, endpoint_id: str) -> EndpointStats | None:
        return self.endpoints.get(endpoint_id)

    def breaker(self, endpoint_id: str) -> BreakerState | None:
        return self.breakers.get(endpoint_id)


EMPTY_SNAPSHOT = StatsSnapshot()
