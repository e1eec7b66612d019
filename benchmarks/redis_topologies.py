"""What a request's Redis work costs through each REDIS_URL form: the limiter's admit and the
end-of-request batch (XADD + settle) over the lean RESP client on one Redis, and over redis-py's
cluster and Sentinel clients on a loopback 3-primary cluster and a Sentinel-watched primary.

Starts its own servers (temporary directory, free ports; stopped at the end).
Run: `.venv/bin/python -m benchmarks.redis_topologies [--rounds 2000 --repeats 5]`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.micro import bench_catalog, bench_key, sample_event
from gateway.keys.redis_limiter import RedisLimiter
from gateway.ledger.stream import RedisStreamLedger
from gateway.redis_options import BACKGROUND_OPTIONS
from gateway.redis_topology import Topology
from gateway.resp import Batch
from tests.support.redis_topologies import Servers, free_port, redis_cluster, redis_sentinel


async def timed(fn: Callable[[], Awaitable[object]], rounds: int, repeats: int) -> dict[str, float]:
    """Best and median CPU µs (the client's own cost) and wall µs (round trips) per call."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            await fn()
        cpu.append((time.process_time() - start_cpu) / rounds * 1e6)
        wall.append((time.perf_counter() - start_wall) / rounds * 1e6)
    return {
        "cpu_us_best": round(min(cpu), 1),
        "cpu_us_median": round(statistics.median(cpu), 1),
        "wall_us_best": round(min(wall), 1),
        "wall_us_median": round(statistics.median(wall), 1),
    }


async def measure(url: str, rounds: int, repeats: int) -> dict[str, Any]:
    topology = Topology.from_url(url)
    commands = topology.commands()
    redis = topology.background(**BACKGROUND_OPTIONS)
    prefix = f"bench-topology-{random.getrandbits(32):x}:"
    try:
        limiter = RedisLimiter(commands, prefix)
        ledger = RedisStreamLedger(redis, prefix, claim_idle_s=30, resp=commands)
        key, event = bench_key(), sample_event(bench_catalog())
        holds: list[Any] = []

        async def admit() -> None:
            holds.append(await limiter.admit(key, Decimal("0.001")))

        async def end() -> None:
            batch = Batch()
            ledger.emit_into(batch, event)
            limiter.settle_into(batch, holds.pop(), Decimal("0.0000024"), 21)
            await batch.send()

        await admit()  # connections, slot map, scripts loaded
        await end()
        return {
            "admit": await timed(admit, rounds, repeats),
            "end (XADD + settle)": await timed(end, rounds, repeats),
        }
    finally:
        await redis.delete(ledger.key)
        await redis.aclose()
        await commands.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.redis_topologies", description=__doc__
    )
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        root = Path(tmp)
        single = Servers(root / "single")
        port = free_port()
        try:
            single.start(port)
            url = f"redis://127.0.0.1:{port}/0"
            results["single (RespClient)"] = uvloop.run(measure(url, args.rounds, args.repeats))
        finally:
            single.stop_all()
        with redis_cluster(root / "cluster") as cluster:
            results["cluster (redis-py RedisCluster)"] = uvloop.run(
                measure(cluster.url, args.rounds, args.repeats)
            )
        with redis_sentinel(root / "sentinel") as sentinel:
            results["sentinel (redis-py master_for)"] = uvloop.run(
                measure(sentinel.url, args.rounds, args.repeats)
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
