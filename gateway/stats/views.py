"""The stats API's bodies, built from rollup sums and the live routing snapshot. Pure functions.

Money is a decimal string (exact); uptime is a percentage as in the models API.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import providers.errors as upstream_errors
from gateway.catalog.views import pricing
from providers.catalog import Catalog, Endpoint
from routing.stats import EndpointStats, Measured

UPTIME_LABELS = ("5m", "30m", "1d", "30d")
PRICE_QUANTUM = Decimal(1).scaleb(-18)  # USD per token: far below a pico-dollar per 1M tokens


def money(value: Decimal) -> str:
    """An exact decimal string, never in exponent form."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def per_token(cost: Decimal, tokens: int) -> str | None:
    if tokens <= 0:
        return None
    return money((cost / tokens).quantize(PRICE_QUANTUM))


def uptime_class(outcome: str, error_class: str) -> str | None:
    """ "ok", "error" or None (doesn't count): the same rule as the live stats."""
    if outcome == "ok":
        return "ok"
    if outcome == "cancelled":
        return None
    if outcome == "error_finish" or not error_class:
        return "error"
    cls = getattr(upstream_errors, error_class, None)
    if isinstance(cls, type) and issubclass(cls, upstream_errors.UpstreamError):
        return "error" if cls.counts_against_uptime else None
    return "error"


def _percentiles(values: Measured | None) -> dict[str, float] | None:
    if values is None:
        return None
    return {"p50": round(values.p50, 1), "p90": round(values.p90, 1), "p99": round(values.p99, 1)}


def _uptime(live: EndpointStats | None) -> dict[str, float | None]:
    result: dict[str, float | None] = {}
    for label in UPTIME_LABELS:
        up = live.uptime(label) if live is not None else None
        result[label] = None if up is None else round(up * 100, 2)
    return result


def errors_by_endpoint(outcomes: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Failed attempts per endpoint by error class (`error_finish` for a finish with error)."""
    result: dict[str, dict[str, int]] = defaultdict(dict)
    for row in outcomes:
        if row["outcome"] in ("ok", "cancelled"):
            continue
        name = row["error_class"] or row["outcome"]
        found = result[row["endpoint_id"]]
        found[name] = found.get(name, 0) + row["attempts"]
    return result


def status_of(catalog: Catalog, endpoint: Endpoint, unavailable: str | None) -> dict[str, Any]:
    status = catalog.status[endpoint.id]
    if not status.enabled:
        return {"state": "disabled", "reason": status.reason or None}
    if unavailable:
        return {"state": "unavailable", "reason": unavailable}
    return {"state": "enabled", "reason": None}


def endpoint_body(
    catalog: Catalog,
    endpoint: Endpoint,
    *,
    live: EndpointStats | None,
    breaker: str,
    unavailable: str | None,
    llamacpp: dict[str, Any] | None,
    traffic: Mapping[str, Any] | None,
    total_requests: int,
    paid: Mapping[str, Any] | None,
    errors: Mapping[str, int],
) -> dict[str, Any]:
    requests = int(traffic["requests"]) if traffic else 0
    status = status_of(catalog, endpoint, unavailable)
    status["llamacpp"] = llamacpp
    return {
        "model": endpoint.model,
        "provider": endpoint.provider,
        "endpoint_id": endpoint.id,
        "status": status,
        "price": pricing(endpoint.price),
        "effective_price": {
            "prompt": per_token(paid["prompt_cost"], paid["prompt_tokens"]) if paid else None,
            "completion": (
                per_token(paid["completion_cost"], paid["completion_tokens"]) if paid else None
            ),
            "prompt_tokens": int(paid["prompt_tokens"]) if paid else 0,
            "cached_tokens": int(paid["cached_tokens"]) if paid else 0,
            "completion_tokens": int(paid["completion_tokens"]) if paid else 0,
        },
        "requests": requests,
        "request_share": round(requests / total_requests, 4) if total_requests else None,
        "uptime": _uptime(live),
        "ttft_ms": _percentiles(live.ttft_ms if live else None),
        "latency_ms": _percentiles(live.latency_ms if live else None),
        "throughput": _percentiles(live.throughput if live else None),
        "errors": dict(sorted(errors.items())),
        "breaker": breaker,
    }


def usage_row(row: Mapping[str, Any], group_by: str) -> dict[str, Any]:
    return {
        "bucket": row["bucket"].isoformat(),
        group_by: row[group_by],
        "requests": row["requests"],
        "errors": row["errors"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cached_tokens": row["cached_tokens"],
        "cost": money(row["cost"]),
    }


def app_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "app": row["app"],
        "requests": row["requests"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cached_tokens": row["cached_tokens"],
        "total_tokens": row["total_tokens"],
        "cost": money(row["cost"]),
    }


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


def history_rows(
    usage: Iterable[Mapping[str, Any]], outcomes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per bucket and provider: requests, mean latency/TTFT/throughput and uptime."""
    uptime: dict[tuple[Any, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in outcomes:
        counted = uptime_class(row["outcome"], row["error_class"])
        if counted is not None:
            uptime[(row["bucket"], row["provider"])][counted == "error"] += row["attempts"]
    rows: dict[tuple[Any, str], dict[str, Any]] = {}
    for row in usage:
        key = (row["bucket"], row["provider"])
        rows[key] = {
            "bucket": row["bucket"].isoformat(),
            "provider": row["provider"],
            "requests": row["requests"],
            "errors": row["errors"],
            "tokens": row["prompt_tokens"] + row["completion_tokens"],
            "latency_ms": _mean(row["latency_ms_sum"], row["requests"]),
            "ttft_ms": _mean(row["ttft_ms_sum"], row["ttft_count"]),
            "throughput": _mean(row["throughput_sum"], row["throughput_count"]),
            "uptime": None,
        }
    for (bucket, provider), (ok, failed) in uptime.items():
        body = rows.setdefault(
            (bucket, provider),
            {
                "bucket": bucket.isoformat(),
                "provider": provider,
                "requests": 0,
                "errors": 0,
                "tokens": 0,
                "latency_ms": None,
                "ttft_ms": None,
                "throughput": None,
            },
        )
        body["uptime"] = round(ok * 100 / (ok + failed), 2) if ok + failed else None
    return [rows[key] for key in sorted(rows)]


def failure_row(row: Mapping[str, Any]) -> dict[str, Any]:
    message = row["error_message"]
    return {
        "generation_id": row["generation_id"],
        "attempt": row["seq"],
        "at": row["started_at"].isoformat(),
        "provider": row["provider"],
        "endpoint_id": row["endpoint_id"],
        "outcome": row["outcome"],
        "http_status": row["http_status"],
        "error_class": row["error_class"] or row["outcome"],
        "message": None if message is None else message[:300],
    }
