"""What a request reserves against its key's limit: its worst-case cost over the endpoints
its plan may try. Pure; the reservation itself is the limiter's."""

from __future__ import annotations

from decimal import Decimal

from providers.catalog import Endpoint
from providers.pricing import ZERO, worst_case_cost
from routing.planner import Plan


def completion_bound(endpoint: Endpoint, prompt_tokens: int, max_tokens: int | None) -> int:
    """The most completion tokens this endpoint can bill: max_tokens, its cap, its context."""
    room = max(endpoint.context_length - prompt_tokens, 1)
    caps = [c for c in (max_tokens, endpoint.max_completion_tokens) if c is not None]
    return min([room, *caps])


def worst_case_of(plan: Plan) -> Decimal:
    request = plan.request
    endpoints = plan.endpoints if plan.allow_fallbacks else plan.endpoints[:1]
    prompt = request.prompt_tokens
    return max(
        (
            worst_case_cost(ep.price, prompt, completion_bound(ep, prompt, request.max_tokens))
            for ep in endpoints
        ),
        default=ZERO,
    )
