"""The planner's explain step: the routing explanation a client asked for (`explain`).

Pure: builds a plain dict from the ranked candidates; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from providers.catalog import Endpoint
from providers.parameters import dropped_parameters
from routing.facts import EndpointFacts
from routing.preferences import Mode, RouteRequest, Sort
from routing.ranking import Pick
from routing.scoring import GATE_NAMES, HEALTHY, OPEN, OUTAGE, Candidate


def explain(
    request: RouteRequest,
    mode: Mode,
    sort: Sort | None,
    pick: Pick,
    ranked: Sequence[Candidate],
    tried: Sequence[Candidate],
    models: Sequence[str],
) -> dict[str, Any]:
    """Mode, sort, how the first was picked, every candidate with its rank, gate and score."""
    tried_ids = {c.facts.id for c in tried}
    body: dict[str, Any] = {
        "mode": mode,
        "sort": None if sort is None else {"by": sort.by, "partition": sort.partition},
        "pick": pick,
        "models": list(models),
        "candidates": [_candidate(c, i, c.facts.id in tried_ids) for i, c in enumerate(ranked)],
    }
    unknown = [m for m in request.fallback_models if m not in models]
    if unknown:
        body["unknown_models"] = unknown
    _notes(body, request, [c.facts.endpoint for c in ranked])
    if any(c.gate in (OUTAGE, OPEN) for c in ranked):
        body["gated"] = {c.facts.id: GATE_NAMES[c.gate] for c in ranked if c.gate > HEALTHY}
    return body


def explain_exacto(request: RouteRequest, chosen: EndpointFacts, pinned: bool) -> dict[str, Any]:
    """Exacto's one endpoint and whether the client or the catalog fixed it."""
    body: dict[str, Any] = {
        "mode": "exacto",
        "pick": "pinned" if pinned else "catalog",
        "candidates": [{"endpoint": chosen.id, "provider": chosen.endpoint.provider}],
    }
    _notes(body, request, [chosen.endpoint])
    return body


def dropped(request: RouteRequest, endpoints: Sequence[Endpoint]) -> dict[str, list[str]]:
    """Per endpoint, the request parameters it would not be sent (it doesn't support them)."""
    out: dict[str, list[str]] = {}
    for endpoint in endpoints:
        names = dropped_parameters(endpoint, request.parameters)
        if names:
            out[endpoint.id] = sorted(names)
    return out


def _candidate(c: Candidate, rank: int, tried: bool) -> dict[str, Any]:
    return {
        "endpoint": c.facts.id,
        "provider": c.facts.endpoint.provider,
        "model": c.facts.endpoint.model,
        "rank": rank,
        "tried": tried,
        "gate": GATE_NAMES[c.gate],
        "gate_reason": c.gate_reason or None,
        "preferred": c.preferred,
        "fresh": c.fresh,
        "score": c.components(),
    }


def _notes(body: dict[str, Any], request: RouteRequest, endpoints: Sequence[Endpoint]) -> None:
    """Fields accepted without effect, and parameters some endpoint would not be sent."""
    if request.ignored:
        body["ignored"] = dict(request.ignored)
    names = dropped(request, endpoints)
    if names:
        body["dropped_parameters"] = names
