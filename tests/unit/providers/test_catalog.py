from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from providers.catalog import DEFAULT_CATALOG, CatalogError, load_catalog, parse_catalog

MODEL = "openai/gpt-oss-20b"


def _doc(**endpoint_overrides: object) -> dict[str, object]:
    endpoint: dict[str, object] = {
        "model": MODEL,
        "provider": "groq",
        "base_url": "https://example.test/v1",
        "upstream_model": "gpt-oss-20b",
        "context_length": 1000,
        "api_key_env": "GROQ_API_KEY",
        "price": {"prompt": "0.075", "completion": "0.30", "cache_read": "0.0375"},
    }
    endpoint.update(endpoint_overrides)
    return {
        "models": {MODEL: {"name": "x", "context_length": 1000, "exacto": "groq"}},
        "endpoints": [endpoint],
    }


def test_shipped_catalog_lists_hosted_and_local_endpoints() -> None:
    catalog = load_catalog(DEFAULT_CATALOG, env={})
    providers = {e.provider for e in catalog.by_model[MODEL]}
    assert {"groq", "together", "deepinfra", "local"} <= providers
    local = next(e for e in catalog.by_model[MODEL] if e.provider == "local")
    assert local.kind == "llamacpp" and local.base_url == "http://127.0.0.1:8080/v1"
    assert catalog.models[MODEL].exacto == "groq"


def test_endpoint_without_key_is_listed_disabled_not_dropped() -> None:
    catalog = load_catalog(DEFAULT_CATALOG, env={})
    groq = f"{MODEL}@groq"
    assert groq in catalog.status
    assert not catalog.status[groq].enabled
    assert "GROQ_API_KEY" in catalog.status[groq].reason
    assert [e.provider for e in catalog.enabled(MODEL)] == ["local"]


def test_key_from_env_enables_endpoint_and_is_never_printed() -> None:
    catalog = parse_catalog(_doc(), env={"GROQ_API_KEY": "sk-very-secret"})
    endpoint = catalog.by_model[MODEL][0]
    assert catalog.status[endpoint.id].enabled
    secret = catalog.secret_for(endpoint)
    assert secret is not None and secret.reveal() == "sk-very-secret"
    assert "sk-very-secret" not in repr(catalog) + repr(secret) + str(secret)


def test_prices_are_exact_decimals() -> None:
    catalog = parse_catalog(_doc(), env={})
    price = catalog.by_model[MODEL][0].price
    assert price.prompt == Decimal("0.075") and price.cache_read == Decimal("0.0375")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"price": {"prompt": 0.075}}, "decimal string"),
        ({"price": {"prompt": "0.0000001"}}, "at most 6 decimals"),
        ({"price": {"prompt": "-1"}}, "non-negative"),
        ({"kind": "grpc"}, "kind"),
        ({"colour": "blue"}, "colour"),
        ({"model": "other/model"}, "no [models] table"),
        ({"context_length": "big"}, "context_length"),
    ],
)
def test_bad_catalog_entries_are_rejected_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(CatalogError, match=message.replace("[", r"\[")):
        parse_catalog(_doc(**overrides), env={})


def test_exacto_must_name_an_endpoint_of_the_model() -> None:
    doc = _doc()
    doc["models"][MODEL]["exacto"] = "nobody"  # type: ignore[index]
    with pytest.raises(CatalogError, match="exacto"):
        parse_catalog(doc, env={})


def test_unreadable_and_invalid_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[models\n")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(bad)
