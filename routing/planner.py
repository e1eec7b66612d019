"""The attempt planner: a request's endpoints, filtered by its preferences and ordered by mode.

Reads the local stats snapshot and affinity memory, never Redis; the executor runs the plan.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.catalog import Catalog, Endpoint, ModelInfo
from providers.parameters import dropped_parameters
from routing.affinity import AffinityMemory, Warm
from routing.breaker import BreakerState
from routing.errors import NoEndpoint, NoMatchingEndpoint, UnknownModel
from routing.facts import EndpointFacts, facts_of
from routing.filters import Filters, apply_filters, check_conflicts, lowered, resolve_mode
from routing.preferences import Mode, RouteRequest, Sort
from routing.scoring import (
    GATE_NAMES,
    HEALTHY,
    OPEN,
    OUTAGE,
    PROBE,
    Candidate,
    Figures,
    Pick,
    RoutingPolicy,
    Thresholds,
    balance_weights,
    expected_completion,
    figures_of,
    meets,
    rank,
    thresholds_of,
)
from routing.stats import EMPTY_SNAPSHOT, StatsSnapshot


@dataclass(frozen=True, slots=True)
class Plan:
    request: RouteRequest
    mode: Mode
    endpoints: tuple[Endpoint, ...]  # in the order they will be tried; nothing else is
    rejected: dict[str, str] = field(default_factory=dict)  # endpoint id -> the filter that cut it
    explanation: dict[str, Any] = field(default_factory=dict)

    @property
    def allow_fallbacks(self) -> bool:
        return self.mode != "exacto" and self.request.preferences.allow_fallbacks


# Why an endpoint can't take a request right now (loading, every slot busy), or None. Read from
# memory (e.g. `providers.llamacpp_health.LlamaCppMonitor.unavailable`); such an endpoint is
# gated behind the available ones, even those behind it in `provider.order`.
Availability = Callable[[str], str | None]


class Planner:
    def __init__(
        self,
        catalog: Catalog,
        snapshot: Callable[[], StatsSnapshot] | None = None,
        *,
        affinity: AffinityMemory | None = None,
        policy: RoutingPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        availability: Availability | None = None,
    ) -> None:
        self.availability = availability
        self._catalog = catalog
        self._facts = facts_of(catalog)
        self._snapshot = snapshot or (lambda: EMPTY_SNAPSHOT)
        self._affinity = affinity
        self.policy = policy or RoutingPolicy()
        self._rng = rng or random.Random()
        self._clock = clock
        self._figures_of: StatsSnapshot | None = None
        self._live: dict[str, Figures] = {}

    def plan(self, request: RouteRequest) -> Plan:
        model = self._catalog.models.get(request.model)
        if model is None:
            raise UnknownModel(
                f"model {request.model!r} is not in the catalog", metadata={"model": request.model}
            )
        check_conflicts(request)
        mode, sort = resolve_mode(request)
        filters = Filters(request)
        rejected: dict[str, str] = {}
        if mode == "exacto":
            return self._exacto(request, model, filters, rejected)
        catalog_models = self._catalog.models
        models = [request.model]
        models += [m for m in request.fallback_models if m in catalog_models and m not in models]
        snapshot, now = self._snapshot(), self._clock()
        live = self._figures(snapshot)
        warm = self._recall(request, now)
        prefs = request.preferences
        order = lowered(prefs.order)
        by_model = sort is None or sort.partition == "model"
        min_tput = thresholds_of(prefs.preferred_min_throughput)
        max_latency = thresholds_of(prefs.preferred_max_latency)
        prompt = request.prompt_tokens
        completion = expected_completion(request.max_tokens, self.policy)
        breakers = snapshot.breakers
        warm_id = warm.endpoint_id if warm is not None else None
        availability = self.availability
        unavailable: set[str] = set()
        candidates: list[Candidate] = []
        for model_rank, model_id in enumerate(models):
            for facts in apply_filters(self._facts.get(model_id, ()), filters, rejected):
                figs = live[facts.id]
                cached = 0
                if facts.id == warm_id and facts.cacheable and warm is not None:
                    cached = min(warm.prompt_tokens, prompt)
                cost = (
                    facts.prompt * (prompt - cached)
                    + facts.cache_read * cached
                    + facts.completion * completion
                ) / 1e6 + facts.request
                preferred = not (min_tput or max_latency) or _preferred(figs, min_tput, max_latency)
                gate, reason = figs.gate, figs.gate_reason
                if breakers:
                    gate, reason = _breaker_gate(breakers.get(facts.id), now, gate, reason)
                why = availability(facts.id) if availability is not None else None
                if why is not None:
                    gate, reason = max(gate, OUTAGE), f"unavailable: {why}"
                    unavailable.add(facts.id)
                candidate = Candidate(
                    facts,
                    model_rank if by_model else 0,
                    order.index(facts.provider) if facts.provider in order else len(order),
                    cost,
                    cached,
                    figs,
                    preferred,
                    gate,
                    reason,
                )
                if cached:
                    saved = (facts.prompt - facts.cache_read) * cached / 1e6
                    candidate.cache_saving = saved / (cost + saved) if cost + saved > 0 else 0.0
                candidates.append(candidate)
        if not candidates:
            raise self._nothing_left(request, rejected)
        if mode == "balanced":
            balance_weights(candidates, completion, self.policy)
        pick = rank(
            candidates,
            mode,
            sort.by if sort else None,
            self.policy,
            self._rng,
            load_balance=not order and (sort is None or sort.by is None),
            warm_id=warm_id,
        )
        if order and unavailable:
            # provider.order outranks gates; an unavailable endpoint still yields its place.
            candidates.sort(key=lambda c: (c.model_rank, c.facts.id in unavailable))
        tried = candidates
        if not prefs.allow_fallbacks and not order:
            tried = _first_per_model(candidates)
        plan = Plan(request, mode, tuple(c.facts.endpoint for c in tried), rejected)
        if request.explain:
            plan.explanation.update(_explain(plan, sort, pick, candidates, tried, request, models))
        return plan

    def _figures(self, snapshot: StatsSnapshot) -> dict[str, Figures]:
        """Every endpoint's figures for this snapshot: computed once per refresh, not per plan."""
        if snapshot is not self._figures_of:
            endpoints = snapshot.endpoints
            policy = self.policy
            self._live = {
                f.id: figures_of(f, endpoints.get(f.id), policy)
                for group in self._facts.values()
                for f in group
            }
            self._figures_of = snapshot
        return self._live

    def _recall(self, request: RouteRequest, now: float) -> Warm | None:
        if self._affinity is None or request.affinity_key is None:
            return None
        return self._affinity.recall(request.affinity_key, now)

    def _exacto(
        self, request: RouteRequest, model: ModelInfo, filters: Filters, rejected: dict[str, str]
    ) -> Plan:
        prefs = request.preferences
        pinned = prefs.only[0] if prefs.only else prefs.order[0] if prefs.order else None
        provider = pinned or model.exacto
        if provider is None:
            raise NoMatchingEndpoint(
                f"model {model.id!r} has no exacto provider; pin one with provider.only",
                metadata={"model": model.id, "mode": "exacto"},
            )
        chosen: EndpointFacts | None = None
        for facts in self._facts.get(model.id, ()):
            if chosen is None and facts.provider == provider.lower():
                chosen = facts
            else:
                rejected[facts.id] = "exacto: not the fixed provider"
        if chosen is None:
            raise NoMatchingEndpoint(
                f"exacto provider {provider!r} does not serve model {model.id!r}",
                metadata={"model": model.id, "provider": provider, "mode": "exacto"},
            )
        why = filters.reason(chosen)
        if why is not None:
            rejected[chosen.id] = why
            raise self._nothing_left(request, rejected)
        plan = Plan(request, "exacto", (chosen.endpoint,), rejected)
        if request.explain:
            plan.explanation.update(
                {
                    "mode": "exacto",
                    "pick": "pinned" if pinned else "catalog",
                    "candidates": [{"endpoint": chosen.id, "provider": chosen.endpoint.provider}],
                }
            )
            if request.ignored:
                plan.explanation["ignored"] = dict(request.ignored)
            dropped = _dropped(request, [chosen.endpoint])
            if dropped:
                plan.explanation["dropped_parameters"] = dropped
        return plan

    @staticmethod
    def _nothing_left(request: RouteRequest, rejected: dict[str, str]) -> NoEndpoint:
        by_filter: dict[str, list[str]] = {}
        for endpoint_id, why in rejected.items():
            by_filter.setdefault(why.split(":", 1)[0], []).append(endpoint_id)
        metadata = {"model": request.model, "rejected": rejected, "filters": by_filter}
        removed = ", ".join(f"{name} removed {len(ids)}" for name, ids in by_filter.items())
        message = f"no endpoint of {request.model!r} is left to serve this request ({removed})"
        if set(by_filter) <= {"disabled"}:
            return NoEndpoint(message, metadata=metadata)
        return NoMatchingEndpoint(message, metadata=metadata)


def _preferred(figs: Figures, min_tput: Thresholds, max_latency: Thresholds) -> bool:
    """Meets preferred_min_throughput (tokens/s) and preferred_max_latency (seconds)."""
    stats = figs.stats
    tput = stats.throughput if stats is not None else None
    ttft = stats.ttft_ms if stats is not None else None
    return meets(tput, figs.throughput, min_tput, minimum=True) and meets(
        ttft, figs.ttft_ms, max_latency, minimum=False, scale=0.001
    )


def _breaker_gate(
    breaker: BreakerState | None, now: float, gate: int, reason: str
) -> tuple[int, str]:
    if breaker is None or not breaker.open:
        return gate, reason
    phase = breaker.phase(now)
    if phase == "open":
        return OPEN, breaker.reason
    if phase == "half_open":
        return PROBE, "half-open: due for a probe"
    return gate, reason


def _dropped(request: RouteRequest, endpoints: list[Endpoint]) -> dict[str, list[str]]:
    """Per endpoint, the request parameters it would not be sent (it doesn't support them)."""
    out: dict[str, list[str]] = {}
    for endpoint in endpoints:
        dropped = dropped_parameters(endpoint, request.parameters)
        if dropped:
            out[endpoint.id] = sorted(dropped)
    return out


def _first_per_model(candidates: list[Candidate]) -> list[Candidate]:
    seen: set[int] = set()
    first: list[Candidate] = []
    for c in candidates:
        if c.model_rank not in seen:
            seen.add(c.model_rank)
            first.append(c)
    return first


def _explain(
    plan: Plan,
    sort: Sort | None,
    pick: Pick,
    candidates: list[Candidate],
    tried: list[Candidate],
    request: RouteRequest,
    models: list[str],
) -> dict[str, Any]:
    tried_ids = {c.facts.id for c in tried}
    unknown = [m for m in request.fallback_models if m not in models]
    body: dict[str, Any] = {
        "mode": plan.mode,
        "sort": None if sort is None else {"by": sort.by, "partition": sort.partition},
        "pick": pick,
        "models": models,
        "candidates": [
            {
                "endpoint": c.facts.id,
                "provider": c.facts.endpoint.provider,
                "model": c.facts.endpoint.model,
                "rank": i,
                "tried": c.facts.id in tried_ids,
                "gate": GATE_NAMES[c.gate],
                "gate_reason": c.gate_reason or None,
                "preferred": c.preferred,
                "fresh": c.fresh,
                "score": c.components(),
            }
            for i, c in enumerate(candidates)
        ],
    }
    if unknown:
        body["unknown_models"] = unknown
    if request.ignored:
        body["ignored"] = dict(request.ignored)
    dropped = _dropped(request, [c.facts.endpoint for c in candidates])
    if dropped:
        body["dropped_parameters"] = dropped
    if any(c.gate in (OUTAGE, OPEN) for c in candidates):
        body["gated"] = {c.facts.id: GATE_NAMES[c.gate] for c in candidates if c.gate > HEALTHY}
    return body
