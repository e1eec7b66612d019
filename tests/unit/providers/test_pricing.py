from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from providers.catalog import Price
from providers.pricing import cost_of, worst_case_cost, worst_case_pico
from providers.usage import Usage

GROQ = Price(prompt=Decimal("0.075"), completion=Decimal("0.30"), cache_read=Decimal("0.0375"))


def test_cost_is_exact_per_million_pricing() -> None:
    cost = cost_of(Usage(prompt_tokens=1000, completion_tokens=500), GROQ)
    assert cost.prompt == Decimal("0.000075")
    assert cost.completion == Decimal("0.00015")
    assert cost.total == Decimal("0.000225")
    assert cost.cache_discount == 0


def test_cached_tokens_are_priced_at_the_cache_read_rate_with_the_discount() -> None:
    cost = cost_of(Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=800), GROQ)
    # 200 uncached at 0.075/M + 800 cached at 0.0375/M
    assert cost.prompt == Decimal("0.000015") + Decimal("0.00003")
    assert cost.cache_discount == Decimal("0.00006") - Decimal("0.00003")


def test_cache_writes_that_cost_extra_give_a_negative_discount() -> None:
    price = Price(
        prompt=Decimal("3"),
        completion=Decimal("15"),
        cache_read=Decimal("0.3"),
        cache_write=Decimal("3.75"),
    )
    cost = cost_of(Usage(prompt_tokens=1000, cache_write_tokens=1000), price)
    assert cost.cache_discount == Decimal("-0.00075")


def test_without_a_cache_read_price_cached_tokens_cost_the_prompt_price() -> None:
    price = Price(prompt=Decimal("0.05"), completion=Decimal("0.2"))
    cost = cost_of(Usage(prompt_tokens=100, cached_tokens=100), price)
    assert cost.cache_discount == 0
    assert cost.prompt == Decimal("0.000005")


@given(
    st.lists(
        st.tuples(st.integers(0, 200_000), st.integers(0, 200_000), st.integers(0, 200_000)),
        max_size=50,
    )
)
def test_costs_sum_exactly(rows: list[tuple[int, int, int]]) -> None:
    costs = [cost_of(Usage(p + c, o, cached_tokens=c), GROQ) for p, c, o in rows]
    total = sum((c.total for c in costs), Decimal(0))
    by_parts = sum((c.prompt + c.completion + c.request for c in costs), Decimal(0))
    assert total == by_parts
    tokens_cost = sum(
        (
            Decimal(p) * GROQ.prompt
            + Decimal(c) * GROQ.effective_cache_read()
            + Decimal(o) * GROQ.completion
            for p, c, o in rows
        ),
        Decimal(0),
    ) / Decimal(1_000_000)
    assert total == tokens_cost


def test_worst_case_bounds_the_real_cost() -> None:
    bound = worst_case_cost(GROQ, prompt_tokens=1000, max_completion_tokens=100)
    real = cost_of(Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=500), GROQ)
    assert real.total <= bound


# Per-1M-token prices with up to 8 decimals: 7 and 8 are finer than a pico per token.
PRICES = st.decimals(min_value=0, max_value=1000, places=8, allow_nan=False, allow_infinity=False)
REQUEST_PRICES = st.decimals(
    min_value=0, max_value=1, places=14, allow_nan=False, allow_infinity=False
)


@given(
    st.builds(
        Price,
        prompt=PRICES,
        completion=PRICES,
        cache_write=st.none() | PRICES,
        request=REQUEST_PRICES,
    ),
    st.integers(0, 2_000_000),
    st.integers(0, 2_000_000),
)
def test_worst_case_in_pico_is_the_decimal_formula_exactly(
    price: Price, prompt_tokens: int, completion_tokens: int
) -> None:
    exact = worst_case_cost(price, prompt_tokens, completion_tokens)
    pico = worst_case_pico(price, prompt_tokens, completion_tokens)
    whole = (
        all(
            d.scaleb(6) == d.scaleb(6).to_integral_value()
            for d in (price.prompt, price.completion, price.cache_write or Decimal(0))
        )
        and price.request.scaleb(12) == price.request.scaleb(12).to_integral_value()
    )
    if whole:
        assert pico is not None and Decimal(pico).scaleb(-12) == exact
    elif pico is not None:  # a finer cache-write price may lose to a whole prompt price
        assert Decimal(pico).scaleb(-12) == exact
