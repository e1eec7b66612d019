"""Scoring: the numbers a request's endpoints are ranked by (cost, figures, gates, weights).

Pure functions over candidates (endpoint facts + live figures); the order itself is
`routing.ranking`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routing import defaults
from routing.facts import EndpointFacts
from routing.preferences import Percentiles
from routing.stats import EndpointStats, Measured

# Gates, best first: a due half-open probe, healthy, recent outage, breaker open.
PROBE, HEALTHY, OUTAGE, OPEN = -1, 0, 1, 2
GATE_NAMES = {PROBE: "probe", HEALTHY: None, OUTAGE: "outage", OPEN: "breaker_open"}
SPEED_CAP = 100.0  # relative speed counts up to 100x either way: beyond is measurement noise


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The knobs of scoring and gating (defaults: `routing.defaults`)."""

    min_samples: int = defaults.MIN_SAMPLES
    explore_share: float = defaults.EXPLORE_SHARE
    outage_uptime: float = defaults.OUTAGE_UPTIME
    outage_min_requests: int = defaults.OUTAGE_MIN_REQUESTS
    affinity_yield: float = defaults.AFFINITY_YIELD
    affinity_min_saving: float = defaults.AFFINITY_MIN_SAVING
    completion_tokens: int = defaults.COMPLETION_TOKENS
    max_completion_tokens: int = defaults.MAX_COMPLETION_TOKENS
    free_price_floor: float = defaults.FREE_PRICE_FLOOR


class Figures:
    """One endpoint's live figures, derived once per stats snapshot (not per request)."""

    __slots__ = ("fresh", "gate", "gate_reason", "stats", "throughput", "ttft_ms", "uptime")

    def __init__(
        self,
        stats: EndpointStats | None,
        throughput: float | None,
        ttft_ms: float | None,
        uptime: float | None,
        fresh: bool,
        gate: int = HEALTHY,
        gate_reason: str = "",
    ) -> None:
        self.stats = stats
        self.throughput = throughput  # output tokens/s (p50 measured, else advertised)
        self.ttft_ms = ttft_ms  # time to first token (p50 measured, else advertised)
        self.uptime = uptime  # over the latency window
        self.fresh = fresh  # too few samples yet: catalog figures, exploration share
        self.gate = gate  # HEALTHY or OUTAGE (breakers are checked per request)
        self.gate_reason = gate_reason


class Candidate:
    """One endpoint as scored for one request."""

    __slots__ = (
        "cache_saving",
        "cached_tokens",
        "cost",
        "facts",
        "fresh",
        "gate",
        "gate_reason",
        "group",
        "model_rank",
        "order_rank",
        "preferred",
        "throughput",
        "ttft_ms",
        "uptime",
        "weight",
    )

    def __init__(
        self,
        facts: EndpointFacts,
        model_rank: int,  # 0: the requested model; 1..: `models` fallbacks in order
        order_rank: int,  # position in provider.order; len(order) when unlisted
        cost: float,  # expected USD, cache-adjusted: ranks endpoints only, never billed
        cached_tokens: int,  # prompt tokens expected from a warm cache
        figures: Figures,
        preferred: bool = True,  # meets preferred_min_throughput / preferred_max_latency
        gate: int = HEALTHY,
        gate_reason: str = "",
    ) -> None:
        self.facts = facts
        self.model_rank = model_rank
        self.order_rank = order_rank
        self.cost = cost
        self.cached_tokens = cached_tokens
        self.cache_saving = 0.0  # share of the expected cost a warm cache saves
        self.throughput = figures.throughput
        self.ttft_ms = figures.ttft_ms
        self.uptime = figures.uptime
        self.fresh = figures.fresh
        self.preferred = preferred
        self.gate = gate
        self.gate_reason = gate_reason
        self.weight = 0.0  # balanced: the chance to be picked first is proportional to it
        # Candidates are tried group by group; only the mode's score orders within one.
        self.group = (model_rank, order_rank, gate, not preferred)

    def regate(self, gate: int, reason: str) -> None:
        """Move the candidate to another gate (breaker, availability): its group follows."""
        self.gate, self.gate_reason = gate, reason
        self.group = (self.model_rank, self.order_rank, gate, not self.preferred)

    def components(self) -> dict[str, Any]:
        """The score's parts, for the routing explanation."""
        return {
            "price": round(self.cost, 12),
            "throughput": None if self.throughput is None else round(self.throughput, 1),
            "latency_ms": None if self.ttft_ms is None else round(self.ttft_ms, 1),
            "uptime": None if self.uptime is None else round(self.uptime, 4),
            "cache": {
                "warm": self.cached_tokens > 0,
                "cached_tokens": self.cached_tokens,
                "saving": round(self.cache_saving, 4),
            },
            "weight": self.weight,
        }


def expected_completion(max_tokens: int | None, policy: RoutingPolicy) -> int:
    if max_tokens is None:
        return policy.completion_tokens
    return min(max_tokens, policy.max_completion_tokens)


def expected_cost(facts: EndpointFacts, prompt: int, cached: int, completion: int) -> float:
    """USD for one request: uncached and cached prompt, completion, per-request fee (a ranking
    weight in float, never a charge: billing is `providers.pricing`)."""
    return (
        facts.prompt * (prompt - cached) + facts.cache_read * cached + facts.completion * completion
    ) / 1e6 + facts.request


def figures_of(facts: EndpointFacts, stats: EndpointStats | None, policy: RoutingPolicy) -> Figures:
    """Measured figures when there are enough samples, else the catalog's; the outage gate."""
    ep = facts.endpoint
    if stats is None:
        return Figures(None, ep.throughput, ep.latency_ms, None, True)
    fresh = stats.samples < policy.min_samples or (
        stats.recovered and stats.recent.requests < policy.min_samples
    )
    tput = stats.throughput.p50 if stats.throughput is not None else None
    ttft = stats.ttft_ms.p50 if stats.ttft_ms is not None else None
    if stats.samples < policy.min_samples:
        tput = ep.throughput if ep.throughput is not None else tput
        ttft = ep.latency_ms if ep.latency_ms is not None else ttft
    result = Figures(stats, tput, ttft, stats.rolling.uptime, fresh)
    recent = stats.recent
    up = recent.uptime
    if recent.requests >= policy.outage_min_requests and up is not None:
        if up < policy.outage_uptime:
            result.gate = OUTAGE
            result.gate_reason = f"uptime {up:.0%} over the last {recent.requests} attempts"
    return result


Thresholds = tuple[tuple[str, float], ...]  # (percentile name, limit)


def thresholds_of(wanted: float | Percentiles | None) -> Thresholds:
    """A preference as (percentile, limit) pairs: a bare number applies to p50."""
    if wanted is None:
        return ()
    if isinstance(wanted, int | float):
        return (("p50", float(wanted)),)
    pairs = (("p50", wanted.p50), ("p75", wanted.p75), ("p90", wanted.p90), ("p99", wanted.p99))
    return tuple((name, value) for name, value in pairs if value is not None)


def meets(
    measured: Measured | None,
    fallback: float | None,
    thresholds: Thresholds,
    *,
    minimum: bool,
    scale: float = 1.0,
) -> bool:
    """Whether measured percentiles (or the advertised figure) satisfy a preference threshold.

    Unknown figures count as meeting it: a new endpoint is not deprioritized for being new.
    """
    for name, threshold in thresholds:
        value = fallback if measured is None else measured.get(name)
        if value is None:
            continue
        value *= scale
        if (value < threshold) if minimum else (value > threshold):
            return False
    return True


def balance_weights(candidates: list[Candidate], completion: int, policy: RoutingPolicy) -> None:
    """Inverse square of effective price, times relative speed, times uptime squared."""
    cheapest = 0.0
    times: list[float] = []
    for c in candidates:
        cost, tput = c.cost, c.throughput
        if cost > 0 and (cheapest == 0.0 or cost < cheapest):
            cheapest = cost
        # Expected seconds to answer, parked in `weight` until the reference time is known.
        if tput:
            c.weight = (c.ttft_ms or 0.0) / 1000 + completion / tput
            times.append(c.weight)
        else:
            c.weight = 0.0
    floor = cheapest * policy.free_price_floor if cheapest > 0 else 1e-9
    times.sort()
    reference = times[len(times) // 2] if times else 0.0
    for c in candidates:
        cost = c.cost if c.cost > floor else floor
        weight = 1.0 / (cost * cost)
        seconds = c.weight
        if seconds > 0:
            speed = reference / seconds
            weight *= (
                SPEED_CAP
                if speed > SPEED_CAP
                else 1 / SPEED_CAP
                if speed * SPEED_CAP < 1
                else speed
            )
        uptime = c.uptime
        if uptime is not None:
            weight *= uptime * uptime if uptime > 0.1 else 0.01
        c.weight = weight
