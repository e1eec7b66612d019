"""Price versions are content-addressed: same prices, same id; any price change, a new one."""

from __future__ import annotations

from decimal import Decimal

from providers.catalog import parse_catalog
from providers.price_version import catalog_version, price_version


def catalog(groq: dict[str, str], throughput: float = 500.0) -> dict[str, object]:
    base = {
        "model": "m/x",
        "base_url": "http://127.0.0.1:9/v1",
        "upstream_model": "x",
        "context_length": 1000,
    }
    return {
        "models": {"m/x": {"name": "x", "context_length": 1000}},
        "endpoints": [
            base | {"provider": "groq", "price": groq, "throughput": throughput},
            base | {"provider": "local", "price": {"prompt": "0", "completion": "0"}},
        ],
    }


def versions(raw: dict[str, object]) -> dict[str, str]:
    return {ep.provider: price_version(ep) for ep in parse_catalog(raw, {}).endpoints}


def test_the_same_prices_written_differently_are_one_version() -> None:
    a = versions(catalog({"prompt": "0.30", "completion": "0.6"}))
    b = versions(catalog({"prompt": "0.3", "completion": "0.600", "cache_read": "0.3"}, 9.0))
    assert a == b  # cache_read defaults to prompt; the throughput hint is no price


def test_any_price_change_is_a_new_version_of_that_endpoint_only() -> None:
    before = versions(catalog({"prompt": "0.3", "completion": "0.6"}))
    for change in ("prompt", "completion", "cache_read", "cache_write", "request"):
        price = {"prompt": "0.3", "completion": "0.6"} | {change: "0.000001"}
        after = versions(catalog(price))
        assert after["groq"] != before["groq"], change
        assert after["local"] == before["local"]
    assert len(before["groq"]) == 12 and int(before["groq"], 16) >= 0


def test_the_catalog_version_follows_prices_only() -> None:
    one = parse_catalog(catalog({"prompt": "0.3", "completion": "0.6"}), {})
    hint = parse_catalog(catalog({"prompt": "0.3", "completion": "0.6"}, 1.0), {})
    dearer = parse_catalog(catalog({"prompt": "0.31", "completion": "0.6"}), {})
    assert catalog_version(one) == catalog_version(hint) != catalog_version(dearer)
    assert Decimal("0.30") == one.endpoints[0].price.prompt
