"""The planner's first and last steps: which endpoints a request may use, as scored candidates,
and which of the ranked ones are kept to be tried.

Pure functions over endpoint facts, live figures and the request; gating is `routing.gates`,
ordering `routing.ranking`.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence

from routing.affinity import Warm
from routing.facts import EndpointFacts
from routing.filters import Filters, apply_filters
from routing.preferences import RouteRequest, Sort
from routing.scoring import Candidate, Figures, Thresholds, expected_cost, meets, thresholds_of


def models_of(request: RouteRequest, known: Container[str]) -> list[str]:
    """The requested model, then the `models` fallbacks the catalog knows (not it again)."""
    models = [request.model]
    models += [m for m in request.fallback_models if m in known and m not in models]
    return models


def candidates(
    facts: Mapping[str, Sequence[EndpointFacts]],
    models: Sequence[str],
    request: RouteRequest,
    *,
    filters: Filters,
    figures: Mapping[str, Figures],
    order: Sequence[str],
    sort: Sort | None,
    completion: int,
    warm: Warm | None,
    rejected: dict[str, str],
) -> list[Candidate]:
    """Every endpoint of `models` that passes the filters (the others go into `rejected`), with
    its expected cost (a warm cache cheapens the prompt) and its outage gate from `figures`."""
    prefs = request.preferences
    by_model = sort is None or sort.partition == "model"
    min_tput = thresholds_of(prefs.preferred_min_throughput)
    max_latency = thresholds_of(prefs.preferred_max_latency)
    picky = bool(min_tput or max_latency)
    prompt = request.prompt_tokens
    warm_id = warm.endpoint_id if warm is not None else None
    found: list[Candidate] = []
    for model_rank, model_id in enumerate(models):
        for f in apply_filters(facts.get(model_id, ()), filters, rejected):
            figs = figures[f.id]
            cached = 0
            if f.id == warm_id and f.cacheable and warm is not None:
                cached = min(warm.prompt_tokens, prompt)
            cost = expected_cost(f, prompt, cached, completion)
            candidate = Candidate(
                f,
                model_rank if by_model else 0,
                order.index(f.provider) if f.provider in order else len(order),
                cost,
                cached,
                figs,
                not picky or preferred(figs, min_tput, max_latency),
                figs.gate,
                figs.gate_reason,
            )
            if cached:
                saved = (f.prompt - f.cache_read) * cached / 1e6
                candidate.cache_saving = saved / (cost + saved) if cost + saved > 0 else 0.0
            found.append(candidate)
    return found


def preferred(figs: Figures, min_tput: Thresholds, max_latency: Thresholds) -> bool:
    """Meets preferred_min_throughput (tokens/s) and preferred_max_latency (seconds)."""
    stats = figs.stats
    tput = stats.throughput if stats is not None else None
    ttft = stats.ttft_ms if stats is not None else None
    return meets(tput, figs.throughput, min_tput, minimum=True) and meets(
        ttft, figs.ttft_ms, max_latency, minimum=False, scale=0.001
    )


def prune(ranked: list[Candidate], request: RouteRequest, order: Sequence[str]) -> list[Candidate]:
    """The candidates that will be tried: all of them, except that `allow_fallbacks: false`
    without `provider.order` keeps only the best of each model."""
    if request.preferences.allow_fallbacks or order:
        return ranked
    seen: set[int] = set()
    first: list[Candidate] = []
    for c in ranked:
        if c.model_rank not in seen:
            seen.add(c.model_rank)
            first.append(c)
    return first
