"""The hold a request takes: the worst case over the endpoints its plan may try."""

from __future__ import annotations

from decimal import Decimal

from gateway.keys.worst_case import completion_bound, worst_case_of
from providers.catalog import Endpoint, Price
from routing.planner import Plan
from routing.preferences import ProviderPreferences, RouteRequest


def endpoint(provider: str, prompt: str, completion: str, cap: int | None = None) -> Endpoint:
    return Endpoint(
        model="m",
        provider=provider,
        base_url="http://x",
        upstream_model="m",
        context_length=1000,
        price=Price(prompt=Decimal(prompt), completion=Decimal(completion)),
        max_completion_tokens=cap,
    )


def test_completion_bound_is_the_tightest_of_max_tokens_cap_and_context():
    ep = endpoint("a", "1", "1", cap=300)
    assert completion_bound(ep, 100, None) == 300
    assert completion_bound(ep, 100, 50) == 50
    assert completion_bound(ep, 900, None) == 100
    assert completion_bound(endpoint("b", "1", "1"), 100, None) == 900
    assert completion_bound(endpoint("b", "1", "1"), 5000, None) == 1


def test_the_most_expensive_endpoint_that_may_run_sets_the_hold():
    cheap, dear = endpoint("cheap", "1", "2"), endpoint("dear", "3", "10")
    route = RouteRequest(model="m", mode="balanced", prompt_tokens=100, max_tokens=10)
    plan = Plan(route, "balanced", (cheap, dear))
    # dear: 100 prompt tokens at $3/M + 10 completion tokens at $10/M
    assert worst_case_of(plan) == Decimal("0.0004")
    no_fallbacks = RouteRequest(
        model="m",
        mode="balanced",
        prompt_tokens=100,
        max_tokens=10,
        preferences=ProviderPreferences(allow_fallbacks=False),
    )
    assert worst_case_of(Plan(no_fallbacks, "balanced", (cheap, dear))) == Decimal("0.00012")
