"""Planner cost per request: a model with N endpoints, live stats for all of them, per mode.

Run: `.venv/bin/python -m benchmarks.bench_planner [--endpoints 20] [--rounds 20000]`.
Prints microseconds per `Planner.plan` call: the best run (least disturbed by the machine)
and the median run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from providers.catalog import Catalog, parse_catalog
from routing.affinity import AffinityMemory
from routing.breaker import Breakers
from routing.buckets import Layout, Observation, Outcome, summarize, tally
from routing.planner import Planner
from routing.preferences import (
    MaxPrice,
    Mode,
    Percentiles,
    ProviderPreferences,
    RouteRequest,
    Sort,
)
from routing.stats import StatsSnapshot

MODEL = "openai/gpt-oss-20b"


def catalog_of(n: int) -> Catalog:
    endpoints = [
        {
            "model": MODEL,
            "provider": f"p{i:02d}",
            "base_url": f"http://127.0.0.1:9/p{i}/v1",
            "upstream_model": "gpt-oss-20b",
            "context_length": 131072,
            "quantization": "fp8" if i % 3 else "mxfp4",
            "supported_parameters": ["max_tokens", "temperature", "tools"],
            "price": {
                "prompt": f"0.{i + 1:02d}",
                "completion": f"0.{i + 10:02d}",
                "cache_read": f"0.00{i % 9 + 1}",
            },
            "throughput": 100 + 37 * i,
            "latency_ms": 150 + 20 * i,
        }
        for i in range(n)
    ]
    raw: dict[str, object] = {
        "models": {MODEL: {"name": "bench", "context_length": 131072}},
        "endpoints": endpoints,
    }
    return parse_catalog(raw, env={})


def snapshot_of(catalog: Catalog, samples: int = 200) -> StatsSnapshot:
    layout = Layout.build()
    buckets: dict[tuple[int, int], dict[str, int]] = {}
    rng = random.Random(7)
    now = time.time()
    for ep in catalog.endpoints:
        for _ in range(samples):
            outcome: Outcome = "ok" if rng.random() > 0.02 else "error"
            tally(
                Observation(
                    ep.id,
                    now - rng.random() * 600,
                    outcome,
                    ttft_s=rng.uniform(0.1, 0.9),
                    latency_s=rng.uniform(0.5, 4.0),
                    throughput=rng.uniform(50, 900),
                ),
                layout,
                buckets,
            )
    stats = summarize(buckets, layout, now)
    return StatsSnapshot(now, stats, dict(Breakers().states()))


def requests() -> dict[str, RouteRequest]:
    def req(mode: Mode, **prefs: object) -> RouteRequest:
        return RouteRequest(
            model=MODEL,
            mode=mode,
            preferences=ProviderPreferences(**prefs),  # type: ignore[arg-type]
            prompt_tokens=1200,
            max_tokens=512,
            parameters=frozenset({"max_tokens"}),
            affinity_key="conv-1",
        )

    return {
        "balanced": req("balanced"),
        "nitro": req("nitro"),
        "floor": req("floor"),
        "exacto (pinned)": req("exacto", only=("p03",)),
        "sort=latency": req("balanced", sort=Sort(by="latency")),
        "balanced + filters": req(
            "balanced",
            ignore=("p01",),
            quantizations=("fp8",),
            max_price=MaxPrice(prompt=0.15, completion=0.25),
            require_parameters=True,
            preferred_max_latency=Percentiles(p50=0.6),
        ),
        "balanced + explain": RouteRequest(MODEL, "balanced", explain=True, prompt_tokens=1200),
    }


def timings(fn: Callable[[], object], rounds: int, repeats: int) -> tuple[float, float]:
    """(best, median) seconds per call over `repeats` runs of `rounds` calls."""
    runs: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        runs.append((time.perf_counter() - start) / rounds)
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    catalog = catalog_of(args.endpoints)
    snapshot = snapshot_of(catalog)
    affinity = AffinityMemory()
    affinity.remember("conv-1", f"{MODEL}@p04", 1000, time.time(), 300)
    planner = Planner(catalog, lambda: snapshot, affinity=affinity, rng=random.Random(1))
    print(
        f"Planner.plan, {args.endpoints} endpoints with live stats, "
        f"{args.repeats} x {args.rounds} calls per row"
    )
    print(f"{'request':<22} {'best us':>8} {'median us':>10} {'tried':>6}")
    for name, request in requests().items():
        plan = planner.plan(request)
        best, median = timings(
            lambda r=request: planner.plan(r),  # type: ignore[misc]
            args.rounds,
            args.repeats,
        )
        print(f"{name:<22} {best * 1e6:>8.1f} {median * 1e6:>10.1f} {len(plan.endpoints):>6}")


if __name__ == "__main__":
    main()
