"""USD <-> integer pico-USD, exact, rounding only sub-pico fractions up."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.keys.pico import from_pico, to_pico


@given(st.integers(min_value=0, max_value=10**20))
def test_round_trip_is_exact(pico: int):
    assert to_pico(from_pico(pico)) == pico


def test_examples():
    assert to_pico(Decimal("0.000000000001")) == 1
    assert to_pico(Decimal("1.5")) == 1_500_000_000_000
    assert to_pico(Decimal("1E-13")) == 1  # finer than a pico-dollar: rounded up, never down
    assert from_pico(123) == Decimal("1.23E-10")
