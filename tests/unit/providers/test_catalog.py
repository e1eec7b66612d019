from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from providers.catalog import DEFAULT_CATALOG, CatalogError, load_catalog, parse_catalog
from providers.simulator.cli import DEFAULT_HOST, DEFAULT_PORT
from providers.simulator.profile import default_fleet

MODEL = "openai/gpt-oss-20b"
SIMULATED_CATALOG = DEFAULT_CATALOG.with_name("simulated.toml")


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


def test_simulated_catalog_is_the_shipped_one_pointed_at_the_simulated_fleet() -> None:
    shipped = load_catalog(DEFAULT_CATALOG, env={})
    simulated = load_catalog(SIMULATED_CATALOG, env={})
    fleet = default_fleet()
    assert {e.provider for e in simulated.endpoints} == set(fleet)
    assert simulated.models == shipped.models
    assert [e.provider for e in simulated.enabled(MODEL)] == [e.provider for e in shipped.endpoints]
    for mirrored, original in zip(simulated.endpoints, shipped.endpoints, strict=True):
        assert mirrored.base_url == f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/{original.provider}/v1"
        assert mirrored.kind == "openai" and mirrored.api_key_env is None
        assert mirrored.upstream_model in fleet[original.provider].models
        assert (
            msgspec.structs.replace(
                mirrored,
                base_url=original.base_url,
                kind=original.kind,
                api_key_env=original.api_key_env,
            )
            == original
        )


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
        ({"price": {"prompt": 0.075, "completion": "0.3"}}, "not a float"),
        ({"price": {"prompt": "0.0000001", "completion": "0.3"}}, "at most 6 decimals"),
        ({"price": {"prompt": "0.1", "completion": "-1"}}, "non-negative"),
        ({"kind": "grpc"}, "kind"),
        ({"colour": "blue"}, "colour"),
        ({"model": "other/model"}, "no [models] table"),
        ({"context_length": "big"}, "context_length"),
        ({"context_length": "32768"}, r"Expected `int`, got `str` - at `\$.context_length`"),
        ({"zdr": "true"}, r"Expected `bool`, got `str` - at `\$.zdr`"),
        ({"throughput": "fast"}, "throughput"),
        ({"price": {}}, "price needs prompt and completion"),
        ({"price": {"prompt": "0.1"}}, "price needs completion"),
        ({"price": {"completion": "0.1"}}, "price needs prompt "),
    ],
)
def test_bad_catalog_entries_are_rejected_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(CatalogError, match=message.replace("[", r"\[")):
        parse_catalog(_doc(**overrides), env={})


def test_decimal_strings_and_whole_numbers_are_exact_prices_under_strict_conversion() -> None:
    catalog = parse_catalog(
        _doc(price={"prompt": "0.000001", "completion": 2, "request": "0"}), env={}
    )
    price = catalog.by_model[MODEL][0].price
    assert (price.prompt, price.completion, price.request) == (
        Decimal("0.000001"),
        Decimal(2),
        Decimal(0),
    )
    assert price.cache_read is None and price.effective_cache_read() == Decimal("0.000001")


def test_model_fields_are_strict_too() -> None:
    doc = _doc()
    doc["models"][MODEL]["context_length"] = "131072"  # type: ignore[index]
    with pytest.raises(CatalogError, match=r'models\."openai/gpt-oss-20b".*context_length'):
        parse_catalog(doc, env={})


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
