"""Catalog entries rendered in OpenRouter's `/models` and `/endpoints` shapes. Pure functions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from providers.catalog import Catalog, Endpoint, ModelInfo, Price

PER_MILLION = Decimal(1_000_000)


def per_token(value: Decimal | None) -> str:
    """USD per 1M tokens -> OpenRouter's USD-per-token decimal string, never exponent form."""
    if value is None:
        return "0"
    text = format((value / PER_MILLION).normalize(), "f")
    return text


def pricing(price: Price) -> dict[str, str]:
    body = {
        "prompt": per_token(price.prompt),
        "completion": per_token(price.completion),
        "request": format(price.request.normalize(), "f"),
        "image": "0",
        "web_search": "0",
        "internal_reasoning": "0",
        "input_cache_read": per_token(price.effective_cache_read()),
    }
    if price.cache_write is not None:
        body["input_cache_write"] = per_token(price.cache_write)
    return body


ARCHITECTURE = {
    "modality": "text->text",
    "input_modalities": ["text"],
    "output_modalities": ["text"],
    "tokenizer": "GPT",
    "instruct_type": None,
}


def _primary(catalog: Catalog, model: ModelInfo) -> Endpoint | None:
    endpoints = catalog.enabled(model.id) or catalog.by_model.get(model.id, ())
    return min(
        endpoints, key=lambda e: (e.price.prompt + e.price.completion, e.provider), default=None
    )


def model_entry(catalog: Catalog, model: ModelInfo) -> dict[str, Any]:
    primary = _primary(catalog, model)
    endpoints = catalog.by_model.get(model.id, ())
    params = sorted({p for e in endpoints for p in e.supported_parameters})
    return {
        "id": model.id,
        "canonical_slug": model.id,
        "name": model.name,
        "created": model.created,
        "description": model.description,
        "context_length": model.context_length,
        "architecture": ARCHITECTURE,
        "pricing": pricing(primary.price) if primary else pricing(Price()),
        "top_provider": {
            "context_length": primary.context_length if primary else model.context_length,
            "max_completion_tokens": primary.max_completion_tokens if primary else None,
            "is_moderated": False,
        },
        "per_request_limits": None,
        "supported_parameters": params,
    }


def endpoint_entry(
    catalog: Catalog, endpoint: Endpoint, stats: dict[str, Any] | None = None
) -> dict[str, Any]:
    status = catalog.status[endpoint.id]
    stats = stats or {}
    return {
        "name": f"{endpoint.provider} | {endpoint.model}",
        "model_name": catalog.models[endpoint.model].name,
        "provider_name": endpoint.provider,
        "tag": f"{endpoint.provider}/{endpoint.quantization}",
        "kind": endpoint.kind,
        "context_length": endpoint.context_length,
        "max_completion_tokens": endpoint.max_completion_tokens,
        "max_prompt_tokens": None,
        "quantization": endpoint.quantization,
        "pricing": pricing(endpoint.price),
        "supported_parameters": list(endpoint.supported_parameters),
        "data_collection": endpoint.data_collection,
        "zdr": endpoint.zdr,
        "supports_implicit_caching": endpoint.price.cache_read is not None,
        "status": 0 if status.enabled else -1,
        "enabled": status.enabled,
        "disabled_reason": status.reason or None,
        "uptime_last_5m": stats.get("uptime_last_5m"),
        "uptime_last_30m": stats.get("uptime_last_30m"),
        "uptime_last_1d": stats.get("uptime_last_1d"),
        "latency_last_30m": stats.get("latency_last_30m"),
        "throughput_last_30m": stats.get("throughput_last_30m"),
        "stats": stats or None,
    }


def provider_entries(catalog: Catalog) -> list[dict[str, Any]]:
    """One entry per provider of the catalog: OpenRouter's `name`, `slug` and policy URLs (the
    catalog has none: null), plus its models and how many of its endpoints are enabled."""
    by_provider: dict[str, list[Endpoint]] = {}
    for endpoint in catalog.endpoints:
        by_provider.setdefault(endpoint.provider, []).append(endpoint)
    return [
        {
            "name": name,
            "slug": name,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
            "status_page_url": None,
            "models": sorted({e.model for e in endpoints}),
            "endpoints": len(endpoints),
            "enabled_endpoints": sum(catalog.status[e.id].enabled for e in endpoints),
        }
        for name, endpoints in sorted(by_provider.items())
    ]
