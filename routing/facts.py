"""What the planner needs to know about each catalog endpoint, computed once per catalog.

Float prices here are ranking weights only; money stays Decimal (`providers.pricing`).
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.catalog import Catalog, Endpoint

NO_LIMIT = 2**62


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    endpoint: Endpoint
    id: str
    provider: str  # lower-cased, as preferences are matched
    enabled: bool
    disabled_reason: str
    parameters: frozenset[str]
    prompt: float  # USD per 1M tokens
    completion: float
    cache_read: float
    request: float  # USD per request
    cacheable: bool  # a cache read is cheaper than a fresh prompt
    context_length: int
    max_completion_tokens: int  # 2**62 when the catalog sets no limit


def facts_of(catalog: Catalog) -> dict[str, tuple[EndpointFacts, ...]]:
    """Per model, its endpoints' facts in catalog order."""
    return {
        model: tuple(_facts(catalog, ep) for ep in endpoints)
        for model, endpoints in catalog.by_model.items()
    }


def _facts(catalog: Catalog, ep: Endpoint) -> EndpointFacts:
    status = catalog.status[ep.id]
    price = ep.price
    cache_read = price.effective_cache_read()
    return EndpointFacts(
        endpoint=ep,
        id=ep.id,
        provider=ep.provider.lower(),
        enabled=status.enabled,
        disabled_reason=status.reason,
        parameters=frozenset(ep.supported_parameters),
        # Floats only rank and weigh endpoints; no cost is ever computed from them. Billing
        # uses providers.pricing (Decimal) and max_price filters compare Decimals.
        prompt=float(price.prompt),
        completion=float(price.completion),
        cache_read=float(cache_read),
        request=float(price.request),
        cacheable=cache_read < price.prompt,
        context_length=ep.context_length,
        max_completion_tokens=ep.max_completion_tokens or NO_LIMIT,
    )
