"""The planner: preference filters, modes, gates, affinity and the explanation. No I/O."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.affinity import AffinityMemory
from routing.breaker import BreakerState
from routing.errors import ConflictingPreferences, NoEndpoint, NoMatchingEndpoint, UnknownModel
from routing.planner import Planner
from routing.preferences import (
    MaxPrice,
    Percentiles,
    ProviderPreferences,
    RouteRequest,
    Sort,
)
from routing.scoring import RoutingPolicy
from routing.stats import StatsSnapshot
from tests.unit.routing.fakes import MODEL, OTHER, catalog, cheapest_first, endpoint, stats

NOW = 1_700_000_000.0
NO_EXPLORE = RoutingPolicy(explore_share=0.0)


def planner(cat, snapshot: StatsSnapshot | None = None, **kw) -> Planner:
    kw.setdefault("policy", NO_EXPLORE)
    return Planner(
        cat,
        (lambda: snapshot) if snapshot is not None else None,
        rng=random.Random(kw.pop("seed", 1)),
        clock=lambda: NOW,
        **kw,
    )


def request(mode="balanced", **prefs) -> RouteRequest:
    return RouteRequest(MODEL, mode, ProviderPreferences(**prefs))


def providers(plan) -> list[str]:
    return [e.provider for e in plan.endpoints]


# -- hard filters -------------------------------------------------------------------------

NAMES = ["a", "b", "c", "d", "e", "f"]
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("3"), places=3)


@st.composite
def catalogs_and_prefs(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    eps = [
        endpoint(
            n,
            str(draw(prices)),
            str(draw(prices)),
            quantization=draw(st.sampled_from(["fp8", "mxfp4"])),
        )
        for n in names
    ]
    ignore = draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
    max_prompt = draw(st.none() | st.floats(min_value=0, max_value=3, allow_nan=False))
    max_completion = draw(st.none() | st.floats(min_value=0, max_value=3, allow_nan=False))
    mode = draw(st.sampled_from(["balanced", "nitro", "floor"]))
    order = draw(st.none() | st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    allow = draw(st.booleans())
    return (
        eps,
        mode,
        dict(
            ignore=tuple(ignore) or None,
            max_price=MaxPrice(prompt=max_prompt, completion=max_completion),
            order=tuple(order) if order else None,
            allow_fallbacks=allow,
        ),
    )


@settings(max_examples=200, deadline=None)
@given(catalogs_and_prefs(), st.integers(0, 2**32))
def test_ignored_and_over_max_price_endpoints_are_never_planned(case, seed) -> None:
    eps, mode, prefs = case
    p = planner(catalog(*eps), seed=seed)
    try:
        plan = p.plan(request(mode, **prefs))
    except (NoEndpoint, ConflictingPreferences):
        return
    max_price = prefs["max_price"]
    for ep in plan.endpoints:
        assert ep.provider not in (prefs["ignore"] or ())
        if max_price.prompt is not None:
            assert ep.price.prompt <= Decimal(repr(max_price.prompt))
        if max_price.completion is not None:
            assert ep.price.completion <= Decimal(repr(max_price.completion))
    for ep_id, why in plan.rejected.items():
        assert why.split(":")[0] in {"ignore", "max_price", "order", "disabled"}, (ep_id, why)


def test_filters_name_what_they_removed() -> None:
    cat = catalog(
        endpoint("a", "0.1", "0.1", data_collection="allow"),
        endpoint("b", "0.9", "0.9"),
        endpoint("c", "0.1", "0.1", quantization="fp8"),
        endpoint("d", "0.1", "0.1", supported_parameters=["temperature"]),
        endpoint("e", "0.1", "0.1"),
    )
    req = RouteRequest(
        MODEL,
        "balanced",
        ProviderPreferences(
            data_collection="deny",
            max_price=MaxPrice(prompt=0.5),
            quantizations=("mxfp4",),
            require_parameters=True,
            ignore=("e",),
        ),
        parameters=frozenset({"max_tokens"}),
    )
    with pytest.raises(NoMatchingEndpoint) as info:
        planner(cat).plan(req)
    assert info.value.client_status == 404
    assert set(info.value.metadata["filters"]) == {
        "data_collection",
        "max_price",
        "quantizations",
        "require_parameters",
        "ignore",
    }
    assert info.value.metadata["rejected"][f"{MODEL}@b"].startswith("max_price: prompt 0.9")


def test_disabled_endpoints_only_give_503() -> None:
    cat = catalog(endpoint("a", api_key_env="NOPE_KEY"))
    with pytest.raises(NoEndpoint) as info:
        planner(cat).plan(request())
    assert info.value.client_status == 503
    assert "NOPE_KEY is not set" in info.value.metadata["rejected"][f"{MODEL}@a"]


def test_unknown_model_is_400_as_openrouter() -> None:
    with pytest.raises(UnknownModel) as info:
        planner(cheapest_first("a")).plan(RouteRequest("x/y", "balanced"))
    assert info.value.client_status == 400 and info.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("mode", "from_suffix", "prefs"),
    [
        ("balanced", False, {"only": ("a",), "ignore": ("a",)}),
        ("balanced", False, {"order": ("a",), "ignore": ("a",), "allow_fallbacks": False}),
        ("exacto", True, {"only": ("a", "b")}),
        ("floor", True, {"sort": "throughput"}),
        ("nitro", True, {"sort": Sort(by="price")}),
        ("balanced", False, {"max_price": MaxPrice(prompt=-1)}),
    ],
)
def test_contradictory_preferences_are_400(mode, from_suffix, prefs) -> None:
    req = RouteRequest(MODEL, mode, ProviderPreferences(**prefs), mode_from_suffix=from_suffix)
    with pytest.raises(ConflictingPreferences) as info:
        planner(cheapest_first("a", "b")).plan(req)
    assert info.value.client_status == 400


# -- order, allow_fallbacks, fallback models ----------------------------------------------


def test_order_goes_first_then_the_rest_by_score() -> None:
    plan = planner(cheapest_first("a", "b", "c", "d")).plan(request(order=("c", "b")))
    assert providers(plan)[:2] == ["c", "b"]
    assert sorted(providers(plan)[2:]) == ["a", "d"]


def test_allow_fallbacks_false_keeps_only_the_ordered_list() -> None:
    plan = planner(cheapest_first("a", "b", "c", "d")).plan(
        request(order=("d", "b"), allow_fallbacks=False)
    )
    assert providers(plan) == ["d", "b"]
    assert plan.rejected[f"{MODEL}@a"].startswith("order:")


def test_allow_fallbacks_false_without_order_keeps_the_best_one() -> None:
    plan = planner(cheapest_first("a", "b", "c")).plan(request("floor", allow_fallbacks=False))
    assert providers(plan) == ["a"]


def test_fallback_models_come_after_the_primary_model() -> None:
    cat = catalog(
        endpoint("a", "0.9", "0.9"),
        endpoint("b", "0.8", "0.8"),
        {**endpoint("z", "0.01", "0.01"), "model": OTHER},
    )
    req = RouteRequest(MODEL, "floor", fallback_models=(OTHER, "nope/unknown"), explain=True)
    plan = planner(cat).plan(req)
    assert [e.id for e in plan.endpoints] == [f"{MODEL}@b", f"{MODEL}@a", f"{OTHER}@z"]
    assert plan.explanation["unknown_models"] == ["nope/unknown"]
    # partition "none" sorts across models
    req = RouteRequest(
        MODEL,
        "balanced",
        ProviderPreferences(sort=Sort(by="price", partition="none")),
        fallback_models=(OTHER,),
    )
    assert planner(cat).plan(req).endpoints[0].provider == "z"


# -- modes ---------------------------------------------------------------------------------


def test_floor_orders_by_effective_price() -> None:
    plan = planner(catalog(endpoint("x", "0.3", "0.3"), endpoint("y", "0.1", "0.1"))).plan(
        request("floor")
    )
    assert providers(plan) == ["y", "x"]


def test_nitro_orders_by_measured_throughput_then_latency() -> None:
    cat = cheapest_first("a", "b", "c")
    snap = StatsSnapshot(
        NOW,
        {
            f"{MODEL}@a": stats(f"{MODEL}@a", throughput=100, ttft_ms=100),
            f"{MODEL}@b": stats(f"{MODEL}@b", throughput=900, ttft_ms=500),
            f"{MODEL}@c": stats(f"{MODEL}@c", throughput=900, ttft_ms=200),
        },
    )
    assert providers(planner(cat, snap).plan(request("nitro"))) == ["c", "b", "a"]


def test_too_few_samples_fall_back_to_advertised_figures() -> None:
    cat = catalog(endpoint("a", throughput=50), endpoint("b", throughput=500))
    snap = StatsSnapshot(
        NOW,
        {
            f"{MODEL}@a": stats(f"{MODEL}@a", throughput=2000, samples=2),  # too few: advertised
            f"{MODEL}@b": stats(f"{MODEL}@b", throughput=300),
        },
    )
    assert providers(planner(cat, snap).plan(request("nitro"))) == ["b", "a"]


def test_sort_latency_and_sort_mode_reporting() -> None:
    cat = cheapest_first("a", "b")
    snap = StatsSnapshot(
        NOW,
        {
            f"{MODEL}@a": stats(f"{MODEL}@a", throughput=100, ttft_ms=900),
            f"{MODEL}@b": stats(f"{MODEL}@b", throughput=50, ttft_ms=100),
        },
    )
    plan = planner(cat, snap).plan(request(sort="latency"))
    assert providers(plan) == ["b", "a"]
    assert plan.mode == "nitro"
    assert planner(cat, snap).plan(request(sort="price")).mode == "floor"


def test_exacto_uses_the_catalog_designation_or_the_pin() -> None:
    cat = catalog(endpoint("a", "0.1"), endpoint("b", "0.5"), endpoint("c", "0.9"), exacto="c")
    plan = planner(cat).plan(request("exacto"))
    assert providers(plan) == ["c"]
    assert all(why.startswith("exacto:") for why in plan.rejected.values())
    assert providers(planner(cat).plan(request("exacto", only=("b",)))) == ["b"]
    assert providers(planner(cat).plan(request("exacto", order=("a", "b")))) == ["a"]
    with pytest.raises(NoMatchingEndpoint):
        planner(cheapest_first("a")).plan(request("exacto"))
    with pytest.raises(NoMatchingEndpoint):
        planner(cat).plan(request("exacto", ignore=("c",)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True), st.data())
def test_exacto_plans_exactly_one_endpoint(names, data) -> None:
    pinned = data.draw(st.sampled_from(names))
    cat = catalog(*(endpoint(n) for n in names), exacto=names[0])
    how = data.draw(st.sampled_from(["catalog", "only", "order"]))
    prefs = {} if how == "catalog" else {how: (pinned,)}
    plan = planner(cat, seed=data.draw(st.integers(0, 99))).plan(request("exacto", **prefs))
    assert len(plan.endpoints) == 1
    assert plan.endpoints[0].provider == (names[0] if how == "catalog" else pinned)
    assert not plan.allow_fallbacks


# -- balanced ------------------------------------------------------------------------------


def test_balanced_shares_follow_inverse_square_price_weights() -> None:
    cat = cheapest_first("a", "b", "c")  # prices 1x, 2x, 3x
    p = planner(cat, seed=42)
    n = 6000
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(n):
        counts[p.plan(request()).endpoints[0].provider] += 1
    weights = {"a": 1.0, "b": 1 / 4, "c": 1 / 9}
    total = sum(weights.values())
    for name, w in weights.items():
        share = w / total
        sigma = (share * (1 - share) / n) ** 0.5
        assert abs(counts[name] / n - share) < 4 * sigma, (name, counts)


def test_balanced_speed_counts_with_price() -> None:
    cat = cheapest_first("a", "b")
    snap = StatsSnapshot(
        NOW,
        {
            f"{MODEL}@a": stats(f"{MODEL}@a", throughput=20, ttft_ms=2000),
            f"{MODEL}@b": stats(f"{MODEL}@b", throughput=2000, ttft_ms=100),
        },
    )
    plan = planner(cat, snap).plan(RouteRequest(MODEL, "balanced", explain=True))
    weights = {c["provider"]: c["score"]["weight"] for c in plan.explanation["candidates"]}
    assert weights["b"] > weights["a"]  # 2x the price, ~10x the speed


def test_outage_in_the_recent_window_goes_to_the_back() -> None:
    cat = cheapest_first("a", "b", "c")
    snap = StatsSnapshot(NOW, {f"{MODEL}@a": stats(f"{MODEL}@a", recent_ok=1, recent_errors=9)})
    for seed in range(30):
        plan = planner(cat, snap, seed=seed).plan(request())
        assert providers(plan)[-1] == "a"


def test_recovered_outage_is_not_gated() -> None:
    cat = cheapest_first("a", "b")
    snap = StatsSnapshot(NOW, {f"{MODEL}@a": stats(f"{MODEL}@a", recent_ok=0, recent_errors=0)})
    firsts = {planner(cat, snap, seed=s).plan(request()).endpoints[0].provider for s in range(40)}
    assert "a" in firsts


def test_open_breaker_goes_last_and_a_due_probe_goes_first() -> None:
    cat = cheapest_first("a", "b", "c")
    open_a = BreakerState(f"{MODEL}@c", open=True, until=NOW + 5, reason="5 consecutive failures")
    snap = StatsSnapshot(NOW, {}, {open_a.endpoint_id: open_a})
    plan = planner(cat, snap).plan(RouteRequest(MODEL, "floor", explain=True))
    assert providers(plan) == ["a", "b", "c"]
    assert plan.explanation["gated"] == {f"{MODEL}@c": "breaker_open"}
    due = BreakerState(f"{MODEL}@c", open=True, until=NOW - 1)
    snap = StatsSnapshot(NOW, {}, {due.endpoint_id: due})
    assert providers(planner(cat, snap).plan(request("floor"))) == ["c", "a", "b"]


def test_preferred_thresholds_deprioritize_without_excluding() -> None:
    cat = cheapest_first("a", "b")
    snap = StatsSnapshot(
        NOW,
        {
            f"{MODEL}@a": stats(f"{MODEL}@a", throughput=30, ttft_ms=3000),
            f"{MODEL}@b": stats(f"{MODEL}@b", throughput=300, ttft_ms=200),
        },
    )
    for wanted in (
        {"preferred_min_throughput": 100},
        {"preferred_max_latency": 1},
        {"preferred_max_latency": Percentiles(p90=1.0)},
    ):
        for seed in range(10):
            plan = planner(cat, snap, seed=seed).plan(request(**wanted))
            assert providers(plan) == ["b", "a"], wanted


def test_exploration_gives_fresh_endpoints_a_share() -> None:
    cat = cheapest_first("a", "b")
    snap = StatsSnapshot(NOW, {f"{MODEL}@a": stats(f"{MODEL}@a", throughput=900)})
    p = planner(cat, snap, policy=RoutingPolicy(explore_share=0.2), seed=3)
    firsts = [p.plan(request("nitro")).endpoints[0].provider for _ in range(2000)]
    share = firsts.count("b") / len(firsts)
    assert 0.15 < share < 0.25


# -- cache affinity -----------------------------------------------------------------------


def cached_catalog():
    return catalog(
        endpoint("a", "1.0", "0.1"),
        endpoint(
            "b", "1.2", "0.1", price={"prompt": "1.2", "completion": "0.1", "cache_read": "0.1"}
        ),
    )


def test_a_warm_cache_makes_a_conversation_sticky() -> None:
    memory = AffinityMemory()
    memory.remember("conv", f"{MODEL}@b", 4000, NOW, 300)
    req = RouteRequest(MODEL, "balanced", prompt_tokens=5000, affinity_key="conv", explain=True)
    for seed in range(20):
        plan = planner(cached_catalog(), affinity=memory, seed=seed).plan(req)
        assert providers(plan)[0] == "b"
    assert plan.explanation["pick"] == "affinity"
    cand = next(c for c in plan.explanation["candidates"] if c["provider"] == "b")
    assert cand["score"]["cache"]["cached_tokens"] == 4000
    assert cand["score"]["cache"]["saving"] > 0.5


def test_a_cache_that_saves_nothing_does_not_make_a_conversation_sticky() -> None:
    memory = AffinityMemory()
    memory.remember("conv", f"{MODEL}@b", 4000, NOW, 300)
    req = RouteRequest(MODEL, "balanced", prompt_tokens=1, affinity_key="conv", explain=True)
    picks = {
        planner(cached_catalog(), affinity=memory, seed=s).plan(req).explanation["pick"]
        for s in range(10)
    }
    assert picks == {"weighted"}


def test_affinity_yields_when_the_warm_provider_is_down_or_much_slower() -> None:
    memory = AffinityMemory()
    memory.remember("conv", f"{MODEL}@b", 4000, NOW, 300)
    req = RouteRequest(MODEL, "balanced", prompt_tokens=5000, affinity_key="conv")
    down = StatsSnapshot(NOW, {f"{MODEL}@b": stats(f"{MODEL}@b", recent_ok=0, recent_errors=5)})
    assert providers(planner(cached_catalog(), down, affinity=memory).plan(req))[0] == "a"
    slow = StatsSnapshot(
        NOW,
        {
            f"{MODEL}@a": stats(f"{MODEL}@a", throughput=1000, ttft_ms=100),
            f"{MODEL}@b": stats(f"{MODEL}@b", throughput=5, ttft_ms=5000),
        },
    )
    firsts = {
        planner(cached_catalog(), slow, affinity=memory, seed=s).plan(req).endpoints[0].provider
        for s in range(20)
    }
    assert "a" in firsts


def test_affinity_expires_with_the_cache_ttl() -> None:
    memory = AffinityMemory()
    memory.remember("conv", f"{MODEL}@b", 4000, NOW - 400, 300)
    assert memory.recall("conv", NOW) is None


def test_explanation_lists_candidates_components_and_rejections() -> None:
    cat = cheapest_first("a", "b", "c")
    req = RouteRequest(MODEL, "balanced", ProviderPreferences(ignore=("c",)), explain=True)
    plan = planner(cat).plan(req)
    exp = plan.explanation
    assert exp["mode"] == "balanced" and exp["pick"] == "weighted"
    assert {c["provider"] for c in exp["candidates"]} == {"a", "b"}
    assert set(exp["candidates"][0]["score"]) >= {
        "price",
        "throughput",
        "latency_ms",
        "uptime",
        "cache",
    }
    assert plan.rejected == {f"{MODEL}@c": "ignore: provider.ignore names it"}
