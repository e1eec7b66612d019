"""A key's routing defaults: its mode (pinned or not) and preferences a request can only narrow."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.keys.preferences import merge_preferences, preferences_json, route_for_key
from gateway.keys.record import ApiKey
from providers.catalog import Endpoint, Price
from routing.facts import EndpointFacts
from routing.filters import Filters, resolve_mode
from routing.preferences import MaxPrice, ProviderPreferences, RouteRequest

NOW = datetime.now(UTC)
PROVIDERS = ("groq", "together", "deepinfra", "local")


def key(**fields) -> ApiKey:
    return ApiKey("key-1", "k", "h", "sk-gw-x", NOW, NOW, **fields)


def test_a_pinned_mode_wins_over_the_requests_suffix():
    route = RouteRequest(model="m", mode="nitro")
    assert route_for_key(route, key(default_mode="exacto", pin_mode=True)).mode == "exacto"
    # A pin also wins over the request's provider.sort.
    sorted_route = RouteRequest(
        model="m", mode="balanced", preferences=ProviderPreferences(sort="price")
    )
    assert resolve_mode(sorted_route)[0] == "floor"
    pinned = route_for_key(sorted_route, key(default_mode="exacto", pin_mode=True))
    assert resolve_mode(pinned)[0] == "exacto"
    assert route_for_key(route, key(default_mode="exacto")).mode == "nitro"
    assert route_for_key(route, key()) is route


def test_an_allowlist_stays_an_allowlist():
    allowed = ProviderPreferences(only=("groq", "local"), data_collection="deny")
    asked = ProviderPreferences(only=("local", "together"), ignore=("x",), order=("local",))
    merged = merge_preferences(asked, allowed)
    assert merged.only == ("local",)
    assert merged.ignore == ("x",)
    assert merged.order == ("local",)
    assert merged.data_collection == "deny"
    assert merge_preferences(ProviderPreferences(), allowed).only == ("groq", "local")
    with pytest.raises(BadRequest) as refused:
        merge_preferences(ProviderPreferences(only=("together",)), allowed)
    assert refused.value.metadata["allowed"] == ["groq", "local"]


def test_restrictions_add_up():
    allowed = ProviderPreferences(
        ignore=("groq",),
        allow_fallbacks=False,
        max_price=MaxPrice(prompt=1.0, completion=2.0),
        zdr=True,
    )
    asked = ProviderPreferences(ignore=("local",), max_price=MaxPrice(prompt=0.5, completion=5.0))
    merged = merge_preferences(asked, allowed)
    assert set(merged.ignore or ()) == {"groq", "local"}
    assert merged.allow_fallbacks is False
    assert merged.max_price == MaxPrice(prompt=0.5, completion=2.0)
    assert merged.zdr is True


@given(
    st.one_of(st.none(), st.lists(st.sampled_from(PROVIDERS), min_size=1, unique=True)),
    st.lists(st.sampled_from(PROVIDERS), min_size=1, unique=True),
)
def test_a_request_never_reaches_a_provider_outside_the_keys_allowlist(asked, allowed):
    key_prefs = ProviderPreferences(only=tuple(allowed))
    request_prefs = ProviderPreferences(only=None if asked is None else tuple(asked))
    try:
        merged = merge_preferences(request_prefs, key_prefs)
    except BadRequest:
        assert asked is not None and not set(asked) & set(allowed)
        return
    assert merged.only and set(merged.only) <= set(allowed)


def test_preferences_json_keeps_only_what_differs_from_the_defaults():
    prefs = ProviderPreferences(only=("groq",), allow_fallbacks=False)
    assert preferences_json(prefs) == {"only": ["groq"], "allow_fallbacks": False}
    assert preferences_json(ProviderPreferences()) == {}


# -- merging never widens: a property over both sides and every field ----------------------


QUANTS = ("fp8", "bf16", "mxfp4")
PARAMETERS = ("tools", "max_tokens", "temperature")


def _facts(
    provider: str, quant: str, collects: bool, zdr: bool, price: int, params
) -> EndpointFacts:
    ep = Endpoint(
        model="m",
        provider=provider,
        base_url="http://x",
        upstream_model="m",
        context_length=100000,
        price=Price(prompt=Decimal(price), completion=Decimal(price * 2)),
        quantization=quant,
        data_collection="allow" if collects else "deny",
        zdr=zdr,
        supported_parameters=tuple(params),
    )
    return EndpointFacts(
        ep,
        ep.id,
        provider,
        True,
        "",
        frozenset(params),
        float(price),
        float(price * 2),
        float(price),
        0.0,
        False,
        100000,
        2**62,
    )


names = st.sampled_from((*PROVIDERS, "GROQ"))
endpoints = st.lists(
    st.builds(
        _facts,
        st.sampled_from(PROVIDERS),
        st.sampled_from(QUANTS),
        st.booleans(),
        st.booleans(),
        st.integers(0, 4),
        st.sets(st.sampled_from(PARAMETERS)),
    ),
    min_size=1,
    max_size=6,
)
name_lists = st.none() | st.lists(names, max_size=3).map(tuple)
preferences = st.builds(
    ProviderPreferences,
    order=name_lists,
    allow_fallbacks=st.booleans(),
    require_parameters=st.booleans(),
    data_collection=st.sampled_from(["allow", "deny"]),
    zdr=st.none() | st.booleans(),
    only=name_lists,
    ignore=name_lists,
    quantizations=st.none() | st.lists(st.sampled_from(QUANTS), max_size=2).map(tuple),
    max_price=st.none()
    | st.builds(
        MaxPrice,
        prompt=st.none() | st.integers(0, 4).map(float),
        completion=st.none() | st.integers(0, 8).map(float),
    ),
)


def _allowed(facts: list[EndpointFacts], prefs: ProviderPreferences, params) -> set[str]:
    filters = Filters(RouteRequest("m", "balanced", prefs, parameters=params))
    return {f.id for f in facts if filters.reason(f) is None}


@settings(max_examples=400, deadline=None)
@given(endpoints, preferences, preferences, st.sets(st.sampled_from(PARAMETERS)).map(frozenset))
def test_merging_a_keys_preferences_never_widens_what_the_key_allows(
    facts, asked: ProviderPreferences, keyed: ProviderPreferences, params
):
    facts = list({f.id: f for f in facts}.values())
    try:
        merged = merge_preferences(asked, keyed)
    except BadRequest:
        return  # refused: nothing runs, the narrowest answer of all
    allowed = _allowed(facts, merged, params)
    assert allowed <= _allowed(facts, keyed, params)
    assert allowed <= _allowed(facts, asked, params)


def test_an_empty_quantization_intersection_is_refused_not_unfiltered():
    with pytest.raises(BadRequest) as refused:
        merge_preferences(
            ProviderPreferences(quantizations=("bf16",)),
            ProviderPreferences(quantizations=("fp8",)),
        )
    assert refused.value.metadata["field"] == "provider.quantizations"


def test_a_keys_fixed_order_keeps_the_request_inside_it():
    keyed = ProviderPreferences(order=("groq", "local"), allow_fallbacks=False)
    merged = merge_preferences(ProviderPreferences(order=("local", "together")), keyed)
    assert merged.order == ("local",) and merged.allow_fallbacks is False
    with pytest.raises(BadRequest):
        merge_preferences(ProviderPreferences(order=("together",)), keyed)
