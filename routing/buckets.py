"""Time-bucketed counters and histograms: how attempts are tallied and merged back into stats.

Pure: both stats stores keep these buckets (in memory, or as Redis hashes with TTLs) and read
them back through `summarize`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from routing import defaults
from routing.stats import (
    THROUGHPUT_FLOOR,
    TTFT_FLOOR_MS,
    Counts,
    EndpointStats,
    bin_of,
    percentiles,
)

Outcome = Literal["ok", "error", "rate_limited"]
BucketKey = tuple[int, int]  # (tier width in ms, bucket index = unix ms // width)
Buckets = Mapping[BucketKey, Mapping[str, int]]
SEP = "|"  # field = endpoint id + SEP + counter name
# Counter names: outcome counts, and histogram bins per figure (prefix + bin index).
OK, ERR, RATE = "ok", "err", "rl"
TTFT, LATENCY, THROUGHPUT = "t", "l", "p"
_OUTCOME_FIELD = {"ok": OK, "error": ERR, "rate_limited": RATE}


@dataclass(frozen=True, slots=True)
class Observation:
    """What one attempt tells the stats."""

    endpoint_id: str
    at: float  # unix seconds: buckets are wall-clock aligned so replicas share them
    outcome: Outcome
    ttft_s: float | None = None  # streamed attempts only: a non-streamed one has no first token
    latency_s: float | None = None
    throughput: float | None = None  # output tokens per generation second


@dataclass(frozen=True, slots=True)
class Tier:
    """Buckets of one width; a window is summed from the tier made for it."""

    width_ms: int
    retention_ms: int  # how long a bucket must survive (its TTL in Redis)
    histograms: bool  # whether TTFT/latency/throughput bins are kept at this width


@dataclass(frozen=True, slots=True)
class Layout:
    """Which windows stats are kept over and the bucket tiers that serve them."""

    uptime: tuple[tuple[str, int], ...]  # (label, window ms)
    outage_ms: int  # the outage gate's window (its uptime since the last recovery)
    latency_ms: int  # the percentile window
    tiers: tuple[Tier, ...]
    by_window: Mapping[int, Tier]  # window ms -> the tier that serves it

    @classmethod
    def build(
        cls,
        uptime_windows_s: Iterable[float] = defaults.UPTIME_WINDOWS_S,
        outage_window_s: float = defaults.OUTAGE_WINDOW_S,
        latency_window_s: float = defaults.LATENCY_WINDOW_S,
        buckets_per_window: int = defaults.STATS_BUCKETS,
        settle_s: float = defaults.STATS_SETTLE_S,
    ) -> Layout:
        uptime = tuple((label_of(w), round(w * 1000)) for w in uptime_windows_s)
        outage_ms, latency_ms = round(outage_window_s * 1000), round(latency_window_s * 1000)
        windows = (*(ms for _, ms in uptime), outage_ms, latency_ms)
        longest: dict[int, int] = {}
        for window in windows:
            width = width_for(window, buckets_per_window)
            longest[width] = max(longest.get(width, 0), window)
        hist_width = width_for(latency_ms, buckets_per_window)
        settle_ms = round(settle_s * 1000)
        tiers = {
            width: Tier(width, window + 2 * width + settle_ms, width == hist_width)
            for width, window in sorted(longest.items())
        }
        by_window = {w: tiers[width_for(w, buckets_per_window)] for w in windows}
        return cls(uptime, outage_ms, latency_ms, tuple(tiers.values()), by_window)

    def indices(self, window_ms: int, now_ms: int) -> tuple[Tier, range]:
        """The tier and bucket indices that cover [now - window, now]."""
        tier = self.by_window[window_ms]
        width = tier.width_ms
        return tier, range((now_ms - window_ms) // width, now_ms // width + 1)


def width_for(window_ms: int, buckets: int) -> int:
    return max(math.ceil(window_ms / buckets), 1)


def label_of(seconds: float) -> str:
    """30 -> "30s", 300 -> "5m", 86400 -> "1d"."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def tally(
    observation: Observation,
    layout: Layout,
    into: dict[BucketKey, dict[str, int]],
) -> None:
    """Add one observation to every tier's current bucket."""
    at_ms = int(observation.at * 1000)
    prefix = observation.endpoint_id + SEP
    outcome_field = prefix + _OUTCOME_FIELD[observation.outcome]
    histogram_fields: list[str] = []
    if observation.outcome == "ok":
        if observation.ttft_s is not None:
            histogram_fields.append(
                f"{prefix}{TTFT}{bin_of(observation.ttft_s * 1000, TTFT_FLOOR_MS)}"
            )
        if observation.latency_s is not None:
            histogram_fields.append(
                f"{prefix}{LATENCY}{bin_of(observation.latency_s * 1000, TTFT_FLOOR_MS)}"
            )
        if observation.throughput is not None and observation.throughput > 0:
            histogram_fields.append(
                f"{prefix}{THROUGHPUT}{bin_of(observation.throughput, THROUGHPUT_FLOOR)}"
            )
    for tier in layout.tiers:
        key = (tier.width_ms, at_ms // tier.width_ms)
        bucket = into.get(key)
        if bucket is None:
            bucket = into[key] = {}
        bucket[outcome_field] = bucket.get(outcome_field, 0) + 1
        if tier.histograms:
            for name in histogram_fields:
                bucket[name] = bucket.get(name, 0) + 1


def merge_into(into: dict[BucketKey, dict[str, int]], more: Buckets) -> None:
    for key, fields in more.items():
        bucket = into.get(key)
        if bucket is None:
            bucket = into[key] = {}
        for name, count in fields.items():
            bucket[name] = bucket.get(name, 0) + count


def needed(layout: Layout, now_ms: int) -> set[BucketKey]:
    """Every bucket some window needs now."""
    keys: set[BucketKey] = set()
    for window in (*(ms for _, ms in layout.uptime), layout.outage_ms, layout.latency_ms):
        tier, indices = layout.indices(window, now_ms)
        keys.update((tier.width_ms, i) for i in indices)
    return keys


class _Acc:
    """Sums for one endpoint while summarizing."""

    __slots__ = ("hist", "recent", "rolling", "windows")

    def __init__(self, labels: int) -> None:
        self.windows = [[0, 0, 0] for _ in range(labels)]
        self.recent = [0, 0, 0]
        self.rolling = [0, 0, 0]
        self.hist: dict[str, dict[int, int]] = {TTFT: {}, LATENCY: {}, THROUGHPUT: {}}


_SLOT = {OK: 0, ERR: 1, RATE: 2}


def summarize(
    buckets: Buckets,
    layout: Layout,
    now: float,
    recovered_at: Mapping[str, float] | None = None,
) -> dict[str, EndpointStats]:
    """Merge the buckets each window covers into per-endpoint stats.

    `recovered_at` (unix seconds per endpoint) restarts the outage window: only buckets that
    begin after an endpoint's last recovery count towards its recent uptime.
    """
    now_ms = int(now * 1000)
    recovered_ms = {k: int(v * 1000) for k, v in (recovered_at or {}).items()}
    labels = len(layout.uptime)
    accs: dict[str, _Acc] = {}

    def acc_of(endpoint_id: str) -> _Acc:
        acc = accs.get(endpoint_id)
        if acc is None:
            acc = accs[endpoint_id] = _Acc(labels)
        return acc

    def fields_in(window_ms: int) -> Iterable[tuple[int, Mapping[str, int]]]:
        tier, indices = layout.indices(window_ms, now_ms)
        for index in indices:
            fields = buckets.get((tier.width_ms, index))
            if fields:
                yield index * tier.width_ms, fields

    for label_slot, (_, window_ms) in enumerate(layout.uptime):
        for _, fields in fields_in(window_ms):
            for name, count in fields.items():
                endpoint_id, _, counter = name.rpartition(SEP)
                if counter in _SLOT:
                    acc_of(endpoint_id).windows[label_slot][_SLOT[counter]] += count
    for start_ms, fields in fields_in(layout.outage_ms):
        for name, count in fields.items():
            endpoint_id, _, counter = name.rpartition(SEP)
            if counter in _SLOT and start_ms >= recovered_ms.get(endpoint_id, 0):
                acc_of(endpoint_id).recent[_SLOT[counter]] += count
    for _, fields in fields_in(layout.latency_ms):
        for name, count in fields.items():
            endpoint_id, _, counter = name.rpartition(SEP)
            slot = _SLOT.get(counter)
            if slot is not None:
                acc_of(endpoint_id).rolling[slot] += count
                continue
            kind = counter[:1]
            if kind in (TTFT, LATENCY, THROUGHPUT):
                hist = acc_of(endpoint_id).hist[kind]
                index = int(counter[1:])
                hist[index] = hist.get(index, 0) + count
    result: dict[str, EndpointStats] = {}
    for endpoint_id, acc in accs.items():
        windows = {
            label: Counts(*acc.windows[slot]) for slot, (label, _) in enumerate(layout.uptime)
        }
        result[endpoint_id] = EndpointStats(
            endpoint_id=endpoint_id,
            windows=windows,
            recent=Counts(*acc.recent),
            rolling=Counts(*acc.rolling),
            recovered=recovered_ms.get(endpoint_id, 0) > now_ms - layout.outage_ms,
            ttft_ms=percentiles(acc.hist[TTFT], TTFT_FLOOR_MS),
            latency_ms=percentiles(acc.hist[LATENCY], TTFT_FLOOR_MS),
            throughput=percentiles(acc.hist[THROUGHPUT], THROUGHPUT_FLOOR),
            samples=sum(acc.hist[LATENCY].values()),
        )
    return result
