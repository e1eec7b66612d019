"""The stats loop survives bad data: an unforeseen error in one refresh is logged and the loop
goes on; a stats field that isn't a number is skipped."""

from __future__ import annotations

import logging

import pytest

from routing.buckets import Layout
from routing.live import LiveStats
from routing.redis_stats_store import _counts
from routing.stats_store import InProcessStatsStore, StoreView
from tests.support.polling import eventually


class BrokenOnce(InProcessStatsStore):
    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self.reads = 0

    async def read(self, now: float) -> StoreView:
        self.reads += 1
        if self.reads == 2:
            raise KeyError("a bucket from another version")
        return await super().read(now)


async def test_the_stats_loop_survives_an_unforeseen_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = BrokenOnce(Layout.build(outage_window_s=5, latency_window_s=5, buckets_per_window=10))
    live = LiveStats(store, refresh_s=0.001, flush_s=0.001)
    with caplog.at_level(logging.ERROR, logger="routing"):
        await live.start()
        try:
            await eventually(lambda: store.reads >= 4, timeout_s=5, what="refreshes go on")
            assert live.task is not None and not live.task.done()
        finally:
            await live.aclose()
    assert "stats refresh failed unexpectedly" in caplog.text


def test_a_stats_field_that_is_not_a_number_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="routing.stats"):
        counts = _counts("gw:stats:x", {b"requests": b"3", b"errors": b"oops", "ok": "2"})
    assert counts == {"requests": 3, "ok": 2}
    assert "unreadable stats field skipped" in caplog.text


async def test_a_shared_pause_of_years_is_cut_to_the_longest_this_version_sets() -> None:
    from routing.breaker import BreakerState
    from routing.stats_store import InProcessStatsStore

    layout = Layout.build(outage_window_s=5, latency_window_s=5, buckets_per_window=10)
    store = InProcessStatsStore(layout)
    now = 1_700_000_000.0
    decade = BreakerState(
        "m@p", open=True, until=now + 10 * 365 * 86400, probe=False, changed_at=now
    )
    store.share_breaker(decade)  # as an older replica wrote it (Retry-After: 315360000)
    await store.flush()
    live = LiveStats(store, clock=lambda: now + 1)
    await live.refresh()
    state = live.breakers.get("m@p")
    assert state is not None and state.until <= now + 60
    assert live.phase("m@p", now + 61)[0] == "closed"
