"""Histograms, time buckets and their summaries: windows, outage reset, percentiles. No I/O."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.buckets import Layout, Observation, label_of, summarize, tally
from routing.stats import RATIO, THROUGHPUT_FLOOR, bin_of, percentiles

NOW = 1_700_000_000.0
EP = "m@a"


@settings(max_examples=200)
@given(st.lists(st.floats(min_value=0.5, max_value=50_000), min_size=1, max_size=300))
def test_histogram_percentiles_are_within_one_bin_of_the_truth(values) -> None:
    counts: dict[int, int] = {}
    for v in values:
        b = bin_of(v, THROUGHPUT_FLOOR)
        counts[b] = counts.get(b, 0) + 1
    got = percentiles(counts, THROUGHPUT_FLOOR)
    assert got is not None
    ordered = sorted(values)
    for q, value in zip((0.5, 0.75, 0.9, 0.99), (got.p50, got.p75, got.p90, got.p99), strict=True):
        true = ordered[max(math.ceil(q * len(ordered)) - 1, 0)]
        assert true / RATIO <= value <= true * RATIO, (q, true, value)


def test_histogram_memory_is_bounded() -> None:
    assert bin_of(1e12, THROUGHPUT_FLOOR) == bin_of(1e15, THROUGHPUT_FLOOR) <= 120
    assert percentiles({}, 1.0) is None


def test_window_labels() -> None:
    assert [label_of(s) for s in (30, 300, 1800, 86_400, 2_592_000, 2.5)] == [
        "30s",
        "5m",
        "30m",
        "1d",
        "30d",
        "2.5s",
    ]


def observe(buckets, layout, at, outcome="ok", **figures) -> None:
    tally(Observation(EP, at, outcome, **figures), layout, buckets)


def test_uptime_per_window_counts_errors_but_not_rate_limits() -> None:
    layout = Layout.build()
    buckets: dict = {}
    for i in range(8):
        observe(buckets, layout, NOW - i)
    observe(buckets, layout, NOW - 1, "error")
    observe(buckets, layout, NOW - 2, "rate_limited")
    observe(buckets, layout, NOW - 600, "error")  # outside 30s and 5m, inside 30m
    s = summarize(buckets, layout, NOW)[EP]
    assert s.windows["30s"].ok == 8 and s.windows["30s"].errors == 1
    assert s.windows["30s"].rate_limited == 1
    assert s.uptime("30s") == 8 / 9
    assert s.windows["5m"].errors == 1 and s.windows["30m"].errors == 2
    assert s.windows["30d"].requests == 10


def test_old_buckets_leave_the_window() -> None:
    layout = Layout.build(outage_window_s=2, latency_window_s=3, buckets_per_window=10)
    buckets: dict = {}
    observe(buckets, layout, NOW - 10, "error")
    observe(buckets, layout, NOW, latency_s=0.2, ttft_s=0.1, throughput=100.0)
    s = summarize(buckets, layout, NOW)[EP]
    assert s.recent.errors == 0 and s.recent.ok == 1
    assert s.samples == 1
    assert s.throughput is not None and 100 / RATIO <= s.throughput.p50 <= 100 * RATIO
    assert s.ttft_ms is not None and 100 / RATIO <= s.ttft_ms.p50 <= 100 * RATIO
    later = summarize(buckets, layout, NOW + 5)[EP]
    assert later.samples == 0 and later.throughput is None


def test_recovery_restarts_the_outage_window() -> None:
    layout = Layout.build(outage_window_s=10, buckets_per_window=10)
    buckets: dict = {}
    for i in range(5):
        observe(buckets, layout, NOW - 8 + i * 0.1, "error")
    observe(buckets, layout, NOW - 0.5)
    before = summarize(buckets, layout, NOW)[EP]
    assert before.recent.errors == 5 and not before.recovered
    after = summarize(buckets, layout, NOW, {EP: NOW - 3})[EP]
    assert after.recent.errors == 0 and after.recent.ok == 1 and after.recovered
    assert after.windows["30s"].errors == 5  # the uptime windows still remember


def test_tiers_share_widths_and_keep_histograms_in_one() -> None:
    layout = Layout.build()
    assert sum(t.histograms for t in layout.tiers) == 1
    assert len({t.width_ms for t in layout.tiers}) == len(layout.tiers) == 5
    hist = next(t for t in layout.tiers if t.histograms)
    assert hist.width_ms == 120_000  # 30 min / 15 buckets
