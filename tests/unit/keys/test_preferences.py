"""A key's routing defaults: its mode (pinned or not) and preferences a request can only narrow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.keys.preferences import merge_preferences, preferences_json, route_for_key
from gateway.keys.record import ApiKey
from routing.filters import resolve_mode
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
