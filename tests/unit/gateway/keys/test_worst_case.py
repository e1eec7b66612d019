"""The hold a request takes: the worst case over the endpoints its plan may try."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.keys.worst_case import completion_bound, worst_case_of
from providers.catalog import Endpoint, Price
from providers.pricing import worst_case_cost
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


def _price_text(n: int) -> str:  # 0..9_999_999_999 as USD per 1M tokens with 8 decimals
    return f"{n // 10**8}.{n % 10**8:08d}"


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**10),  # prompt price, with 8 decimals: some finer than a pico
            st.integers(0, 10**10),  # completion price
            st.sampled_from([None, 100, 5000]),  # max_completion_tokens
            st.sampled_from([500, 4096, 200_000]),  # context length
        ),
        max_size=6,
    ),
    st.integers(0, 300_000),
    st.none() | st.integers(1, 100_000),
    st.booleans(),
    st.booleans(),
)
def test_worst_case_of_is_the_max_of_the_decimal_formula(
    rows: list[tuple[int, int, int | None, int]],
    prompt_tokens: int,
    max_tokens: int | None,
    whole_prices: bool,
    fallbacks: bool,
) -> None:
    endpoints = tuple(
        Endpoint(
            model="m",
            provider=f"p{n}",
            base_url="http://x",
            upstream_model="m",
            context_length=context,
            price=Price(
                prompt=Decimal(_price_text(p - p % 100 if whole_prices else p)),
                completion=Decimal(_price_text(c - c % 100 if whole_prices else c)),
            ),
            max_completion_tokens=cap,
        )
        for n, (p, c, cap, context) in enumerate(rows)
    )
    route = RouteRequest(
        model="m",
        mode="balanced",
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        preferences=ProviderPreferences(allow_fallbacks=fallbacks),
    )
    may_run = endpoints if fallbacks else endpoints[:1]
    expected = max(
        (
            worst_case_cost(
                ep.price,
                prompt_tokens,
                min(
                    [
                        max(ep.context_length - prompt_tokens, 1),
                        *[c for c in (max_tokens, ep.max_completion_tokens) if c is not None],
                    ]
                ),
            )
            for ep in may_run
        ),
        default=Decimal(0),
    )
    assert worst_case_of(Plan(route, "balanced", endpoints)) == expected
