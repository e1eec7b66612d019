"""Every routing knob as one composed, frozen object: the policies the parts of routing take.

Built once from the gateway's settings (`gateway.settings.RoutingSettings.config`); its
defaults are the policies' own (`routing.defaults`). Not env parsing; wiring is `routing.runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from providers.provider import Timeouts
from routing import defaults
from routing.breaker import BreakerPolicy
from routing.buckets import Layout
from routing.retry import RetryPolicy
from routing.scoring import RoutingPolicy


@dataclass(frozen=True, slots=True)
class StatsPolicy:
    """How live stats are kept: the background loop's pace and the windows counted over."""

    refresh_s: float = defaults.STATS_REFRESH_S
    flush_s: float = defaults.STATS_FLUSH_S
    buckets: int = defaults.STATS_BUCKETS
    settle_s: float = defaults.STATS_SETTLE_S
    uptime_windows_s: tuple[float, ...] = defaults.UPTIME_WINDOWS_S
    outage_window_s: float = defaults.OUTAGE_WINDOW_S
    latency_window_s: float = defaults.LATENCY_WINDOW_S

    def layout(self) -> Layout:
        return Layout.build(
            self.uptime_windows_s,
            self.outage_window_s,
            self.latency_window_s,
            self.buckets,
            self.settle_s,
        )


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """One replica's routing configuration, one policy per part."""

    timeouts: Timeouts = defaults.TIMEOUTS  # one attempt's
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_attempts: int = defaults.MAX_ATTEMPTS  # one generation's, across endpoints
    scoring: RoutingPolicy = field(default_factory=RoutingPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    stats: StatsPolicy = field(default_factory=StatsPolicy)
    affinity_entries: int = defaults.AFFINITY_ENTRIES
