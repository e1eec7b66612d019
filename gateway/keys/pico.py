"""Money as integer pico-USD (1e-12), the unit of the limiter's counters; exact both ways."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

PICO = 12


def to_pico(usd: Decimal) -> int:
    """USD -> pico-USD, rounding a finer fraction up so a limit is never under-counted."""
    return int(usd.scaleb(PICO).to_integral_value(rounding=ROUND_CEILING))


def from_pico(pico: int) -> Decimal:
    return Decimal(pico).scaleb(-PICO)
