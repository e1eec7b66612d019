"""Breaker transitions: open on failures or Retry-After, half-open probe, recovery. No I/O."""

from __future__ import annotations

from routing.breaker import BreakerPolicy, Breakers, BreakerState

T = 1_700_000_000.0
EP = "m@a"


def test_consecutive_failures_open_and_a_success_resets_the_streak() -> None:
    b = Breakers(BreakerPolicy(failures=3, cooldown_s=5))
    assert b.on_failure(EP, T) is None
    assert b.on_failure(EP, T) is None
    assert b.on_success(EP, T) is None  # closed: nothing to share
    assert b.on_failure(EP, T) is None and b.on_failure(EP, T) is None
    opened = b.on_failure(EP, T)
    assert opened is not None and opened.open and opened.until == T + 5
    assert b.phase(EP, T + 1) == "open"
    assert b.phase(EP, T + 5) == "half_open"


def test_failed_probe_reopens_longer_and_a_good_probe_recovers() -> None:
    b = Breakers(BreakerPolicy(failures=1, cooldown_s=2, max_cooldown_s=5))
    b.on_failure(EP, T)
    reopened = b.on_failure(EP, T + 2)  # the probe
    assert reopened is not None and reopened.until == T + 2 + 4 and reopened.trips == 2
    again = b.on_failure(EP, T + 6)
    assert again is not None and again.until == T + 6 + 5  # capped
    assert b.on_success(EP, T + 7) is None  # still open: a stale success proves nothing
    closed = b.on_success(EP, T + 11)
    assert closed is not None and not closed.open and closed.recovered_at == T + 11
    assert closed.trips == 0


def test_retry_after_cools_down_without_a_probe() -> None:
    b = Breakers()
    state = b.on_retry_after(EP, T, 3)
    assert state is not None and state.open and not state.probe
    assert b.phase(EP, T + 1) == "open"
    assert b.phase(EP, T + 3) == "closed"
    assert b.on_retry_after(EP, T + 1, 1) is None  # an earlier end never shortens it
    closed = b.on_success(EP, T + 4)
    assert closed is not None and closed.recovered_at == 0.0  # not an outage


def test_newer_shared_states_win_the_merge() -> None:
    b = Breakers()
    mine = b.on_retry_after(EP, T, 10)
    assert mine is not None
    older = BreakerState(EP, open=False, changed_at=T - 1)
    assert not b.merge({EP: older})
    newer = BreakerState(EP, open=False, recovered_at=T + 1, changed_at=T + 1)
    assert b.merge({EP: newer})
    assert b.phase(EP, T + 2) == "closed"


def test_state_round_trips_as_json() -> None:
    state = BreakerState(EP, open=True, until=T, probe=False, trips=2, reason="x", changed_at=T)
    assert BreakerState.from_json(state.to_json()) == state


def test_outage_seen_in_shared_stats_opens_a_closed_breaker_once() -> None:
    b = Breakers()
    assert b.on_outage(EP, T, "uptime 10%") is not None
    assert b.on_outage(EP, T + 1, "uptime 10%") is None
