"""JSON shapes of keys for clients and admins (OpenRouter's `{"data": ...}` envelope).

Money is printed as exact plain JSON numbers; a secret appears only in `created`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from gateway.json_encoding import json_number
from gateway.keys.hashing import MintedSecret, label_of
from gateway.keys.limiter import KeyUsage
from gateway.keys.pico import from_pico
from gateway.keys.preferences import preferences_json
from gateway.keys.record import ApiKey

RATE_INTERVAL = "1m"


def _usd(value: Decimal | None) -> msgspec.Raw | None:
    return None if value is None else json_number(value)


def _limit(key: ApiKey, usage: KeyUsage) -> dict[str, Any]:
    remaining = None
    if key.limit is not None:
        remaining = max(key.limit - from_pico(usage.of(key.limit_reset)), Decimal(0))
    return {
        "limit": _usd(key.limit),
        "limit_remaining": _usd(remaining),
        "limit_reset": None if key.limit_reset == "none" else key.limit_reset,
        "usage": _usd(from_pico(usage.total)),
        "usage_daily": _usd(from_pico(usage.daily)),
        "usage_weekly": _usd(from_pico(usage.weekly)),
        "usage_monthly": _usd(from_pico(usage.monthly)),
    }


def _rate_limit(key: ApiKey) -> dict[str, Any]:
    rate = key.rate_limit
    return {
        "requests": rate.requests_per_minute,
        "tokens": rate.tokens_per_minute,
        "interval": RATE_INTERVAL,
    }


def _routing(key: ApiKey) -> dict[str, Any]:
    return {
        "mode": key.default_mode,
        "pin_mode": key.pin_mode,
        "provider": None if key.provider is None else preferences_json(key.provider),
    }


def current_key(key: ApiKey, usage: KeyUsage) -> dict[str, Any]:
    """`GET /api/v1/key`: the caller's own key."""
    return {
        "data": {
            "label": label_of(key.prefix) if key.prefix else key.name,
            "name": key.name,
            **_limit(key, usage),
            "is_free_tier": False,
            "is_provisioning_key": False,
            "rate_limit": _rate_limit(key),
            "routing": _routing(key),
        }
    }


def credits(key: ApiKey, usage: KeyUsage) -> dict[str, Any]:
    """`GET /api/v1/credits` for a key: `total_credits` is its spend limit (null: none),
    `total_usage` what it has spent in all; the limit's own window is in `limit_*`."""
    limit = _limit(key, usage)
    return {
        "data": {
            "total_credits": limit["limit"],
            "total_usage": limit["usage"],
            "limit_remaining": limit["limit_remaining"],
            "limit_reset": limit["limit_reset"],
        }
    }


def admin_key(key: ApiKey, usage: KeyUsage) -> dict[str, Any]:
    """One key as the admin API lists it."""
    return {
        "id": key.id,
        "name": key.name,
        "label": label_of(key.prefix),
        "disabled": key.disabled,
        **_limit(key, usage),
        "rate_limit": _rate_limit(key),
        "routing": _routing(key),
        "created_at": key.created_at.isoformat(),
        "updated_at": key.updated_at.isoformat(),
    }


def created(key: ApiKey, usage: KeyUsage, minted: MintedSecret) -> dict[str, Any]:
    """The create response: the only time the secret is shown."""
    return {"data": admin_key(key, usage), "key": minted.secret}
