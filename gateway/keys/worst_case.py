"""What a request reserves against its key's limit: its worst-case cost over the endpoints
its plan may try, a bound and not a guess. Pure; the reservation itself is the limiter's."""

from __future__ import annotations

from decimal import Decimal

from providers.catalog import Endpoint
from providers.pricing import PICO, ZERO, worst_case_cost, worst_case_pico
from routing.bounds import completion_bound
from routing.planner import Plan

__all__ = ["completion_bound", "worst_case_of"]


def _bounds(endpoint: Endpoint, plan: Plan) -> tuple[int, int]:
    """(prompt, completion) tokens this endpoint may bill at most: the prompt's upper bound
    (no more than fits its context) and every choice (`n`, `best_of`) at the completion cap
    the executor sends it."""
    request = plan.request
    bound = request.prompt_bound
    prompt = min(bound, endpoint.context_length) if bound else request.prompt_tokens
    per_choice = completion_bound(endpoint, request.prompt_tokens, request.max_tokens)
    return prompt, per_choice * request.choices


def worst_case_of(plan: Plan) -> Decimal:
    endpoints = plan.endpoints if plan.allow_fallbacks else plan.endpoints[:1]
    most: int | None = None  # in pico-USD: integers compare and add faster than Decimals
    for ep in endpoints:
        pico = worst_case_pico(ep.price, *_bounds(ep, plan))
        if pico is None:  # a price finer than a pico: the Decimal formula for every endpoint
            return max(worst_case_cost(ep.price, *_bounds(ep, plan)) for ep in endpoints)
        if most is None or pico > most:
            most = pico
    return ZERO if most is None else Decimal(most).scaleb(-PICO)
