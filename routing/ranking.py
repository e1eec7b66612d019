"""The planner's rank step: the order a request's candidates are tried in, per mode.

Pure: sorts candidates in place by the mode's key; the first place may go to a random draw by
weight, an exploration of a fresh endpoint or a warm cache, with the RNG passed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal

from routing.preferences import Mode, Sort, SortBy
from routing.scoring import HEALTHY, Candidate, RoutingPolicy, balance_weights

Pick = Literal["weighted", "explore", "affinity", "sorted", "only"]


def rank(
    candidates: list[Candidate],
    mode: Mode,
    sort: Sort | None,
    policy: RoutingPolicy,
    rng: random.Random,
    *,
    completion: int,
    order: Sequence[str],
    unavailable: Collection[str] = (),
    warm_id: str | None = None,
) -> Pick:
    """Sort `candidates` in place into the order they will be tried; say how the first was picked.

    Balanced weighs every candidate first. `provider.order` outranks gates, except that an
    unavailable endpoint still yields its place.
    """
    if mode == "balanced":
        balance_weights(candidates, completion, policy)
    sort_by = sort.by if sort else None
    load_balance = not order and sort_by is None
    pick = sort_and_pick(candidates, mode, sort_by, policy, rng, load_balance, warm_id)
    if order and unavailable:
        candidates.sort(key=lambda c: (c.model_rank, c.facts.id in unavailable))
    return pick


def sort_and_pick(
    candidates: list[Candidate],
    mode: Mode,
    sort_by: SortBy | None,
    policy: RoutingPolicy,
    rng: random.Random,
    load_balance: bool,
    warm_id: str | None = None,
) -> Pick:
    """Balanced (when load balancing is on) draws the first of the best group at random by
    weight, unless a warm-cache endpoint scores close enough to lead; nitro and balanced give a
    fresh endpoint the first place `explore_share` of the time (not under an explicit order or
    sort). The rest follow in score order.
    """
    if len(candidates) <= 1:
        return "only"
    candidates.sort(key=_key(mode, sort_by))
    top = _lead_size(candidates)
    if top == 1 or candidates[0].gate > HEALTHY:
        return "sorted"
    if not load_balance:
        return "sorted"
    group = candidates[:top]
    chosen = _explore(group, mode, policy, rng)
    pick: Pick = "explore"
    if chosen is None:
        if mode != "balanced":
            return "sorted"
        chosen, pick = _balanced_lead(group, policy, rng, warm_id)
    if chosen is not candidates[0]:
        candidates.remove(chosen)
        candidates.insert(0, chosen)
    return pick


def _lead_size(candidates: list[Candidate]) -> int:
    """How many candidates share the first one's group."""
    lead = candidates[0].group
    top = 1
    while top < len(candidates) and candidates[top].group == lead:
        top += 1
    return top


def _explore(
    group: list[Candidate], mode: Mode, policy: RoutingPolicy, rng: random.Random
) -> Candidate | None:
    """A fresh endpoint of the lead group, `explore_share` of the time (balanced, nitro)."""
    if mode not in ("balanced", "nitro") or policy.explore_share <= 0:
        return None
    fresh = [c for c in group if c.fresh]
    if fresh and len(fresh) < len(group) and rng.random() < policy.explore_share:
        return fresh[int(rng.random() * len(fresh))]
    return None


def _balanced_lead(
    group: list[Candidate], policy: RoutingPolicy, rng: random.Random, warm_id: str | None
) -> tuple[Candidate, Pick]:
    """The warm-cache endpoint when it saves enough and weighs close enough, else a draw."""
    warm = next((c for c in group if c.facts.id == warm_id), None) if warm_id else None
    if (
        warm is not None
        and warm.cache_saving >= policy.affinity_min_saving
        and warm.weight >= group[0].weight * policy.affinity_yield
    ):
        return warm, "affinity"
    return _weighted(group, rng), "weighted"


def _weighted(group: list[Candidate], rng: random.Random) -> Candidate:
    total = sum(c.weight for c in group)
    if total <= 0:
        return group[0]
    r = rng.random() * total
    for c in group:
        r -= c.weight
        if r < 0:
            return c
    return group[-1]


def _key(mode: Mode, sort_by: SortBy | None) -> Callable[[Candidate], tuple[Any, ...]]:
    inf = math.inf
    if sort_by == "latency":

        def latency(c: Candidate) -> tuple[Any, ...]:
            ttft = inf if c.ttft_ms is None else c.ttft_ms
            return (c.group, ttft, -(c.throughput or 0.0), c.cost)

        return latency
    if mode == "floor":

        def floor(c: Candidate) -> tuple[Any, ...]:
            return (c.group, c.cost, -(c.throughput or 0.0))

        return floor
    if mode == "nitro":

        def nitro(c: Candidate) -> tuple[Any, ...]:
            ttft = inf if c.ttft_ms is None else c.ttft_ms
            return (c.group, -(c.throughput or 0.0), ttft, c.cost)

        return nitro

    def balanced(c: Candidate) -> tuple[Any, ...]:
        return (c.group, -c.weight)

    return balanced
