"""The planner's steps one by one: candidates, gate, rank, prune, explain. Pure, no I/O."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from routing.affinity import Warm
from routing.breaker import BreakerState
from routing.candidates import candidates, models_of, prune
from routing.explain import explain, explain_exacto
from routing.facts import facts_of
from routing.filters import Filters, apply_filters
from routing.gates import gate
from routing.planner import Planner
from routing.preferences import MaxPrice, ProviderPreferences, RouteRequest
from routing.ranking import rank
from routing.scoring import OPEN, OUTAGE, PROBE, RoutingPolicy, expected_cost, figures_of
from tests.unit.routing.fakes import MODEL, OTHER, catalog, cheapest_first, endpoint

NOW = 1_700_000_000.0
POLICY = RoutingPolicy(explore_share=0.0)


def built(cat, request: RouteRequest, warm: Warm | None = None, order=()):
    facts = facts_of(cat)
    figures = {f.id: figures_of(f, None, POLICY) for group in facts.values() for f in group}
    rejected: dict[str, str] = {}
    found = candidates(
        facts,
        models_of(request, cat.models),
        request,
        filters=Filters(request),
        figures=figures,
        order=order,
        sort=None,
        completion=100,
        warm=warm,
        rejected=rejected,
    )
    return found, rejected


def test_models_keep_the_requested_one_first_and_drop_unknown_fallbacks() -> None:
    request = RouteRequest(MODEL, "floor", fallback_models=(OTHER, MODEL, "x/y"))
    assert models_of(request, {MODEL, OTHER}) == [MODEL, OTHER]


def test_candidates_cost_is_the_one_expected_cost_formula_with_a_warm_cache() -> None:
    cat = catalog(
        endpoint("a", price={"prompt": "1.0", "completion": "2.0", "cache_read": "0.1"}),
        endpoint("b", "0.5", "0.5", max_completion_tokens=10),
    )
    request = RouteRequest(MODEL, "floor", prompt_tokens=1000, max_tokens=50)
    warm = Warm(f"{MODEL}@a", 800, NOW + 60)
    found, rejected = built(cat, request, warm)
    (a,) = found
    assert a.cached_tokens == 800
    assert a.cost == expected_cost(a.facts, 1000, 800, 100)
    assert 0 < a.cache_saving < 1
    assert rejected == {f"{MODEL}@b": "max_tokens: 50 > the endpoint's 10"}


@given(
    st.integers(0, 200_000),
    st.none() | st.integers(1, 5000),
    st.booleans(),
)
def test_the_rules_every_request_has_are_the_same_with_or_without_preferences(
    prompt, max_tokens, picky
) -> None:
    cat = catalog(
        endpoint("a", context_length=4096, max_completion_tokens=1000),
        endpoint("b", context_length=131072),
        endpoint("c", api_key_env="NOPE_KEY"),
    )
    prefs = ProviderPreferences(max_price=MaxPrice(prompt=100.0)) if picky else None
    request = RouteRequest(
        MODEL,
        "floor",
        prefs or ProviderPreferences(),
        prompt_tokens=prompt,
        max_tokens=max_tokens,
    )
    plain = RouteRequest(MODEL, "floor", prompt_tokens=prompt, max_tokens=max_tokens)
    facts = facts_of(cat)[MODEL]
    seen: dict[str, str] = {}
    baseline: dict[str, str] = {}
    kept = apply_filters(facts, Filters(request), seen)
    assert Filters(request).picky is picky
    assert kept == apply_filters(facts, Filters(plain), baseline)
    assert seen == baseline


def test_gate_puts_breakers_and_unavailable_endpoints_behind_the_others() -> None:
    found, _ = built(cheapest_first("a", "b", "c"), RouteRequest(MODEL, "floor"))
    breakers = {
        f"{MODEL}@a": BreakerState(f"{MODEL}@a", open=True, until=NOW + 5, reason="5 failures"),
        f"{MODEL}@b": BreakerState(f"{MODEL}@b", open=True, until=NOW - 1),
    }
    busy = {f"{MODEL}@c": "every slot is busy"}
    unavailable = gate(found, breakers, NOW, busy.get)
    assert unavailable == {f"{MODEL}@c"}
    a, b, c = found
    assert (a.gate, a.gate_reason) == (OPEN, "5 failures")
    assert (b.gate, b.gate_reason) == (PROBE, "half-open: due for a probe")
    assert (c.gate, c.gate_reason) == (OUTAGE, "unavailable: every slot is busy")
    assert [x.group[2] for x in found] == [OPEN, PROBE, OUTAGE]  # the rank key follows


def test_gate_without_breakers_or_availability_changes_nothing() -> None:
    found, _ = built(cheapest_first("a", "b"), RouteRequest(MODEL, "floor"))
    groups = [c.group for c in found]
    assert gate(found, {}, NOW, None) == set()
    assert [c.group for c in found] == groups


def test_rank_keeps_provider_order_but_an_unavailable_endpoint_yields_its_place() -> None:
    request = RouteRequest(MODEL, "floor", ProviderPreferences(order=("c", "b")))
    found, _ = built(cheapest_first("a", "b", "c"), request, order=("c", "b"))
    unavailable = gate(found, {}, NOW, {f"{MODEL}@c": "loading"}.get)
    pick = rank(
        found,
        "floor",
        None,
        POLICY,
        random.Random(0),
        completion=100,
        order=("c", "b"),
        unavailable=unavailable,
    )
    assert pick == "sorted"
    assert [c.facts.provider for c in found] == ["b", "a", "c"]


def test_prune_keeps_the_best_of_each_model_only_without_fallbacks_or_order() -> None:
    cat = catalog(
        endpoint("a"),
        endpoint("b"),
        {**endpoint("z"), "model": OTHER},
        {**endpoint("y"), "model": OTHER},
    )
    request = RouteRequest(
        MODEL, "floor", ProviderPreferences(allow_fallbacks=False), fallback_models=(OTHER,)
    )
    found, _ = built(cat, request)
    assert [c.facts.provider for c in prune(found, request, ())] == ["a", "z"]
    assert prune(found, request, ("a",)) is found
    open_request = RouteRequest(MODEL, "floor", fallback_models=(OTHER,))
    assert prune(found, open_request, ()) is found


def test_explain_names_every_candidate_and_what_was_tried() -> None:
    request = RouteRequest(
        MODEL, "floor", fallback_models=("x/y",), ignored=(("seed", "not supported"),)
    )
    found, _ = built(cheapest_first("a", "b"), request)
    body = explain(request, "floor", None, "sorted", found, found[:1], [MODEL])
    assert [c["provider"] for c in body["candidates"]] == ["a", "b"]
    assert [c["tried"] for c in body["candidates"]] == [True, False]
    assert body["unknown_models"] == ["x/y"] and body["ignored"] == {"seed": "not supported"}
    assert "gated" not in body
    exacto = explain_exacto(request, found[1].facts, pinned=True)
    assert exacto["pick"] == "pinned" and exacto["candidates"][0]["provider"] == "b"


def test_a_plan_is_whole_when_made_and_never_changed_after() -> None:
    plan = Planner(cheapest_first("a")).plan(RouteRequest(MODEL, "floor"))
    assert dict(plan.explanation) == {} and dict(plan.rejected) == {}
    explained = Planner(cheapest_first("a")).plan(RouteRequest(MODEL, "floor", explain=True))
    assert explained.explanation["mode"] == "floor"


def test_availability_is_given_at_construction() -> None:
    busy = {f"{MODEL}@a": "loading"}
    planner = Planner(
        cheapest_first("a", "b"), policy=POLICY, rng=random.Random(0), availability=busy.get
    )
    plan = planner.plan(RouteRequest(MODEL, "floor", explain=True))
    assert [e.provider for e in plan.endpoints] == ["b", "a"]
    assert plan.explanation["candidates"][1]["gate_reason"] == "unavailable: loading"
