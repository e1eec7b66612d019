"""Exact money: the cost of one generation from catalog prices and normalized usage.

Pure functions over Decimal; nothing here rounds through float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from providers.catalog import Price
from providers.usage import Usage

PER_MILLION = Decimal(1_000_000)
USD_QUANTUM = Decimal("1e-12")  # catalog prices have <= 6 decimals per 1M tokens
PICO = 12  # USD_QUANTUM's exponent: costs are computed as integer pico-USD where they can be
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one generation cost, in USD."""

    prompt: Decimal  # uncached prompt + cache reads + cache writes
    completion: Decimal
    request: Decimal
    cache_discount: Decimal  # saved against the uncached price; negative if writes cost extra

    @property
    def total(self) -> Decimal:
        return self.prompt + self.completion + self.request

    def to_openrouter(self) -> dict[str, Any]:
        """`usage.cost` and `usage.cost_details` as OpenRouter returns them."""
        return {
            "cost": self.total,
            "is_byok": False,
            "cost_details": {
                "upstream_inference_cost": self.total,
                "upstream_inference_prompt_cost": self.prompt,
                "upstream_inference_completions_cost": self.completion,
                "cache_discount": self.cache_discount,
            },
        }


ZERO_COST = Cost(ZERO, ZERO, ZERO, ZERO)


def _usd(tokens: int, per_million: Decimal) -> Decimal:
    return (per_million * tokens / PER_MILLION).quantize(USD_QUANTUM)


def _pico_per_token(per_million: Decimal) -> int | None:
    """A per-1M-token USD price as exact integer pico-USD per token; None if it has more than
    6 decimals (then only the Decimal formula, which rounds to the pico, is exact)."""
    rate = per_million.scaleb(PICO - 6)
    return int(rate) if rate.is_finite() and rate == rate.to_integral_value() else None


def cost_of(usage: Usage, price: Price) -> Cost:
    """Price a generation: uncached prompt, cache reads and writes, completion, per request."""
    cache_read_price = price.effective_cache_read()
    cache_write_price = price.prompt if price.cache_write is None else price.cache_write
    uncached = max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    prompt = (
        _usd(uncached, price.prompt)
        + _usd(usage.cached_tokens, cache_read_price)
        + _usd(usage.cache_write_tokens, cache_write_price)
    )
    full_price = _usd(usage.cached_tokens + usage.cache_write_tokens, price.prompt)
    paid = _usd(usage.cached_tokens, cache_read_price) + _usd(
        usage.cache_write_tokens, cache_write_price
    )
    return Cost(
        prompt=prompt,
        completion=_usd(usage.completion_tokens, price.completion),
        request=price.request.quantize(USD_QUANTUM),
        cache_discount=full_price - paid,
    )


def worst_case_cost(price: Price, prompt_tokens: int, max_completion_tokens: int) -> Decimal:
    """Upper bound of a request's cost before it runs (no cache discount assumed)."""
    return (
        _usd(prompt_tokens, max(price.prompt, price.cache_write or ZERO))
        + _usd(max_completion_tokens, price.completion)
        + price.request
    )


def worst_case_pico(price: Price, prompt_tokens: int, max_completion_tokens: int) -> int | None:
    """`worst_case_cost` in integer pico-USD, exactly, without Decimal arithmetic per call;
    None when a price is finer than a pico per token (then only `worst_case_cost` is exact)."""
    rates = _worst_case_rates(price)
    if rates is None:
        return None
    prompt, completion, request = rates
    return prompt_tokens * prompt + max_completion_tokens * completion + request


@lru_cache(maxsize=1024)
def _worst_case_rates(price: Price) -> tuple[int, int, int] | None:
    """Pico-USD per prompt token (the dearer of prompt and cache write), per completion token,
    and per request; None if any of them is not a whole number of pico-USD."""
    prompt = _pico_per_token(max(price.prompt, price.cache_write or ZERO))
    completion = _pico_per_token(price.completion)
    request = price.request.scaleb(PICO)
    whole = request.is_finite() and request == request.to_integral_value()
    if prompt is None or completion is None or not whole:
        return None
    return prompt, completion, int(request)
