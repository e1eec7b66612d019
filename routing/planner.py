"""The attempt planner: a request's endpoints, filtered by its preferences and ordered by mode.

A short shell over pure steps: candidates (`routing.candidates`), gate (`routing.gates`), rank
(`routing.ranking`), prune, explain (`routing.explain`). Reads the local stats snapshot and
affinity memory, never Redis; the executor runs the plan.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from providers.catalog import Catalog, Endpoint, ModelInfo
from routing.affinity import AffinityMemory, Warm
from routing.candidates import candidates, models_of, prune
from routing.errors import NoEndpoint, NoMatchingEndpoint, UnknownModel
from routing.explain import explain, explain_exacto
from routing.facts import EndpointFacts, facts_of
from routing.filters import Filters, check_conflicts, lowered, resolve_mode
from routing.gates import Availability, gate
from routing.preferences import Mode, RouteRequest
from routing.ranking import rank
from routing.scoring import Figures, RoutingPolicy, expected_completion, figures_of
from routing.stats import EMPTY_SNAPSHOT, StatsSnapshot

__all__ = ["Availability", "Plan", "Planner"]

_NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Plan:
    """One request's routing decision; made once by the planner, read by everyone after."""

    request: RouteRequest
    mode: Mode
    endpoints: tuple[Endpoint, ...]  # in the order they will be tried; nothing else is
    # endpoint id -> the filter that cut it
    rejected: Mapping[str, str] = field(default_factory=lambda: _NOTHING)
    explanation: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)  # when asked

    @property
    def allow_fallbacks(self) -> bool:
        return self.mode != "exacto" and self.request.preferences.allow_fallbacks


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
        self._catalog = catalog
        self._facts = facts_of(catalog)
        self._snapshot = snapshot or (lambda: EMPTY_SNAPSHOT)
        self._affinity = affinity
        self.policy = policy or RoutingPolicy()
        self._rng = rng or random.Random()
        self._clock = clock
        self._availability = availability
        self._figures_of: StatsSnapshot | None = None
        self._live: dict[str, Figures] = {}

    def plan(self, request: RouteRequest) -> Plan:
        model = self._model(request)
        check_conflicts(request)
        mode, sort = resolve_mode(request)
        filters = Filters(request)
        rejected: dict[str, str] = {}
        if mode == "exacto":
            return self._exacto(request, model, filters, rejected)
        snapshot, now = self._snapshot(), self._clock()
        models = models_of(request, self._catalog.models)
        order = lowered(request.preferences.order)
        completion = expected_completion(request.max_tokens, self.policy)
        warm = self._recall(request, now)
        found = candidates(
            self._facts,
            models,
            request,
            filters=filters,
            figures=self._figures(snapshot),
            order=order,
            sort=sort,
            completion=completion,
            warm=warm,
            rejected=rejected,
        )
        if not found:
            raise nothing_left(request, rejected)
        unavailable = gate(found, snapshot.breakers, now, self._availability)
        warm_id = warm.endpoint_id if warm is not None else None
        pick = rank(
            found,
            mode,
            sort,
            self.policy,
            self._rng,
            completion=completion,
            order=order,
            unavailable=unavailable,
            warm_id=warm_id,
        )
        tried = prune(found, request, order)
        explanation = (
            explain(request, mode, sort, pick, found, tried, models)
            if request.explain
            else _NOTHING
        )
        return Plan(request, mode, tuple(c.facts.endpoint for c in tried), rejected, explanation)

    def _model(self, request: RouteRequest) -> ModelInfo:
        model = self._catalog.models.get(request.model)
        if model is None:
            raise UnknownModel(
                f"model {request.model!r} is not in the catalog", metadata={"model": request.model}
            )
        return model

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
            raise nothing_left(request, rejected)
        explanation = explain_exacto(request, chosen, bool(pinned)) if request.explain else _NOTHING
        return Plan(request, "exacto", (chosen.endpoint,), rejected, explanation)


def nothing_left(request: RouteRequest, rejected: Mapping[str, str]) -> NoEndpoint:
    """The error for a request whose every endpoint was cut, naming each filter's share:
    503 when only disabled endpoints were cut, 404 when the client's preferences were."""
    by_filter: dict[str, list[str]] = {}
    for endpoint_id, why in rejected.items():
        by_filter.setdefault(why.split(":", 1)[0], []).append(endpoint_id)
    metadata = {"model": request.model, "rejected": rejected, "filters": by_filter}
    removed = ", ".join(f"{name} removed {len(ids)}" for name, ids in by_filter.items())
    message = f"no endpoint of {request.model!r} is left to serve this request ({removed})"
    if set(by_filter) <= {"disabled"}:
        return NoEndpoint(message, metadata=metadata)
    return NoMatchingEndpoint(message, metadata=metadata)
