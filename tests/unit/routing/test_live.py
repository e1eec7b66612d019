"""LiveStats over the in-process store: attempts become stats, breakers and a snapshot. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from providers.errors import (
    MidStreamError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamUnavailable,
)
from routing.breaker import BreakerPolicy, Breakers
from routing.buckets import Layout
from routing.executor import Attempt
from routing.live import LiveStats, observation_of
from routing.stats_store import InProcessStatsStore

T = 1_700_000_000.0
EP = "m@a"


def attempt(outcome="ok", **kw) -> Attempt:
    return Attempt(EP, "a", datetime.now(UTC), outcome=outcome, **kw)


def test_what_counts_against_uptime() -> None:
    def kind(error: UpstreamError | None, outcome="ok"):
        obs = observation_of(attempt(outcome), error, T)
        return None if obs is None else obs.outcome

    assert kind(None) == "ok"
    assert kind(None, "error_finish") == "error"
    assert kind(None, "cancelled") is None
    assert kind(UpstreamServerError("x", upstream_status=502)) == "error"
    assert kind(MidStreamError("x")) == "error"
    assert kind(UpstreamRateLimited("x", upstream_status=429)) == "rate_limited"
    assert kind(UpstreamBadRequest("x", upstream_status=400)) is None
    assert kind(UpstreamBadRequest("x", upstream_status=413)) is None
    assert kind(UpstreamUnavailable("busy")) is None


def test_ttft_only_from_streams_and_throughput_from_generation_time() -> None:
    streamed = attempt(
        ttft_s=0.2, latency_s=1.2, streamed=True, completion_tokens=100, generation_s=1.0
    )
    obs = observation_of(streamed, None, T)
    assert obs is not None and obs.ttft_s == 0.2 and obs.throughput == 100.0
    plain = observation_of(attempt(ttft_s=1.0, latency_s=1.0, completion_tokens=50), None, T)
    assert plain is not None and plain.ttft_s is None and plain.throughput is None


def live(clock) -> LiveStats:
    layout = Layout.build(outage_window_s=5, latency_window_s=5, buckets_per_window=10)
    return LiveStats(
        InProcessStatsStore(layout),
        Breakers(BreakerPolicy(failures=3, cooldown_s=1)),
        clock=clock,
    )


async def test_attempts_show_up_in_the_next_snapshot() -> None:
    now = [T]
    stats = live(lambda: now[0])
    for _ in range(4):
        stats.observe(
            attempt(
                latency_s=0.5, ttft_s=0.1, streamed=True, completion_tokens=40, generation_s=0.4
            ),
            None,
        )
    stats.observe(attempt(), UpstreamServerError("x", upstream_status=500))
    assert stats.snapshot().get(EP) is None  # nothing until the refresh
    snap = await stats.refresh()
    s = snap.get(EP)
    assert s is not None and s.recent.ok == 4 and s.recent.errors == 1 and s.samples == 4
    assert s.throughput is not None and 80 < s.throughput.p50 < 120
    assert stats.endpoint_stats()[EP]["uptime_last_30m"] == 80.0


async def test_consecutive_failures_open_the_breaker_in_the_snapshot_at_once() -> None:
    now = [T]
    stats = live(lambda: now[0])
    for _ in range(3):
        stats.observe(attempt(), UpstreamServerError("x", upstream_status=503))
    assert stats.phase(EP, T) == ("open", T + 1)
    assert stats.snapshot().breaker(EP) is not None  # no refresh needed
    now[0] = T + 1.5
    assert stats.phase(EP, now[0])[0] == "half_open"
    assert await stats.claim_probe(EP, now[0])
    assert not await stats.claim_probe(EP, now[0])  # one probe per half-open period
    stats.observe(attempt(), None)
    assert stats.phase(EP, now[0])[0] == "closed"
    snap = await stats.refresh()
    s = snap.get(EP)
    assert s is not None and s.recovered and s.recent.errors == 0


async def test_retry_after_takes_the_endpoint_out_for_that_long() -> None:
    stats = live(lambda: T)
    stats.observe(attempt(), UpstreamRateLimited("x", upstream_status=429, retry_after=7))
    assert stats.phase(EP, T) == ("open", T + 7)
    assert stats.phase(EP, T + 7)[0] == "closed"


async def test_shared_outage_opens_the_breaker_of_a_replica_that_saw_none() -> None:
    layout = Layout.build(outage_window_s=5, latency_window_s=5, buckets_per_window=10)
    store = InProcessStatsStore(layout)
    seer = LiveStats(store, Breakers(BreakerPolicy(failures=100)), clock=lambda: T)
    other = LiveStats(store, Breakers(BreakerPolicy(failures=3)), clock=lambda: T)
    for _ in range(5):
        seer.observe(attempt(), UpstreamServerError("x", upstream_status=500))
    snap = await other.refresh()
    state = snap.breaker(EP)
    assert state is not None and state.open and "uptime 0%" in state.reason
