"""The OpenRouter shape of a generation record (`{"data": {...}}`), money as exact numbers."""

from __future__ import annotations

from typing import Any

from gateway.generations.queries import GenerationRecord
from gateway.json_encoding import json_number


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def provider_response(attempt: dict[str, Any], upstream_id: str | None = None) -> dict[str, Any]:
    """One attempt under OpenRouter's `provider_responses` names (`id`, `endpoint_id`,
    `model_permaslug`, `provider_name`, `status`, `latency`, `is_byok`), plus the gateway's own
    (`provider`, `endpoint`, `outcome`, `error_class`, `ttft`, `started_at`)."""
    ok = attempt["outcome"] == "ok"
    endpoint_id: str = attempt["endpoint_id"]
    return {
        "id": upstream_id if ok else None,
        "endpoint_id": endpoint_id,
        "model_permaslug": endpoint_id.rpartition("@")[0] or None,
        "provider_name": attempt["provider"],
        "is_byok": False,
        "provider": attempt["provider"],
        "endpoint": endpoint_id,
        "status": 200 if ok and attempt["http_status"] is None else attempt["http_status"],
        "outcome": attempt["outcome"],
        "error_class": attempt["error_class"],
        "latency": _ms(attempt["latency_ms"]),
        "ttft": _ms(attempt["ttft_ms"]),
        "started_at": attempt["started_at"].isoformat(),
    }


def generation_body(record: GenerationRecord) -> dict[str, Any]:
    g = record.generation
    total = json_number(g["cost"])
    upstream = g["upstream_cost"]
    return {
        "data": {
            "id": g["id"],
            "upstream_id": g.get("upstream_id"),
            "session_id": g.get("session_id"),
            "external_user": g.get("external_user"),
            "total_cost": total,
            "cache_discount": json_number(g["cache_discount"]),
            "upstream_inference_cost": None if upstream is None else json_number(upstream),
            "usage": total,
            "is_byok": False,
            "created_at": g["created_at"].isoformat(),
            "model": g["model"],
            "requested_model": g["requested_model"],
            "provider_name": g["provider"],
            "endpoint_id": g["endpoint_id"],
            "price_version": g.get("price_version"),
            "mode": g["mode"],
            "status": g["status"],
            "streamed": g["streamed"],
            "cancelled": g["cancelled"],
            "latency": _ms(g["latency_ms"]),
            "time_to_first_token": _ms(g["ttft_ms"]),
            "generation_time": _ms(g["generation_ms"]),
            "moderation_latency": None,
            "throughput": g["throughput"],
            "tokens_prompt": g["prompt_tokens"],
            "tokens_completion": g["completion_tokens"],
            "native_tokens_prompt": g["prompt_tokens"],
            "native_tokens_completion": g["completion_tokens"],
            "native_tokens_cached": g["cached_tokens"],
            "native_tokens_cache_write": g["cache_write_tokens"],
            "native_tokens_reasoning": g["reasoning_tokens"],
            "native_tokens_completion_images": 0,
            "num_media_prompt": None,
            "num_media_completion": None,
            "num_search_results": None,
            "finish_reason": g["finish_reason"],
            "native_finish_reason": g["native_finish_reason"],
            "origin": g["app_referer"] or "",
            "http_referer": g["app_referer"],
            "app_title": g["app_title"],
            "app_id": None,
            "api_type": "completions",
            "router": None,
            "attempts": g["attempt_count"],
            "routing": g["explanation"],
            "provider_responses": [
                provider_response(a, g.get("upstream_id")) for a in record.attempts
            ],
        }
    }
