"""What a request reserves against its key's limit: its worst-case cost over the endpoints
its plan may try. Pure; the reservation itself is the limiter's."""

from __future__ import annotations

from decimal import Decimal

from providers.catalog import Endpoint
from providers.pricing import PICO, ZERO, worst_case_cost, worst_case_pico
from routing.planner import Plan


def completion_bound(endpoint: Endpoint, prompt_tokens: int, max_tokens: int | None) -> int:
    """The most completion tokens this endpoint can bill: max_tokens, its cap, its context."""
    bound = max(endpoint.context_length - prompt_tokens, 1)
    if max_tokens is not None and max_tokens < bound:
        bound = max_tokens
    cap = endpoint.max_completion_tokens
    return cap if cap is not None and cap < bound else bound


def worst_case_of(plan: Plan) -> Decimal:
    request = plan.request
    endpoints = plan.endpoints if plan.allow_fallbacks else plan.endpoints[:1]
    prompt, max_tokens = request.prompt_tokens, request.max_tokens
    most: int | None = None  # in pico-USD: integers compare and add faster than Decimals
    for ep in endpoints:
        pico = worst_case_pico(ep.price, prompt, completion_bound(ep, prompt, max_tokens))
        if pico is None:  # a price finer than a pico: the Decimal formula for every endpoint
            return max(
                worst_case_cost(ep.price, prompt, completion_bound(ep, prompt, max_tokens))
                for ep in endpoints
            )
        if most is None or pico > most:
            most = pico
    return ZERO if most is None else Decimal(most).scaleb(-PICO)
