"""What the Prometheus metrics cost per generation: on the request path (`record`) and off it
(the background `flush` that folds events into prometheus_client), in one process and in
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, as `gateway serve --workers N` runs).

Run: `.venv/bin/python -m benchmarks.metrics` (about 20 s). Multiprocess mode is measured in a
child process, since prometheus_client picks its mode at import time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal

from gateway.ledger.events import GenerationEvent
from providers.pricing import Cost
from providers.usage import Usage
from routing.attempts import Attempt

EVENTS = 20_000
REPEATS = 7


def event(n: int) -> GenerationEvent:
    now = datetime.now(UTC)
    provider = ("groq", "together", "local")[n % 3]
    return GenerationEvent(
        id=f"gen-{n}",
        created_at=now,
        requested_model="openai/gpt-oss-20b",
        model="openai/gpt-oss-20b",
        mode=("balanced", "nitro", "floor")[n % 3],
        streamed=n % 2 == 0,
        provider=provider,
        endpoint_id=f"openai/gpt-oss-20b@{provider}",
        usage=Usage(prompt_tokens=900, completion_tokens=120, cached_tokens=512),
        cost=Cost(Decimal("0.0000412"), Decimal("0.000036"), Decimal(0), Decimal("0.0000192")),
        latency_s=0.42,
        ttft_s=0.08,
        attempts=[Attempt(f"openai/gpt-oss-20b@{provider}", provider, now, 0.42, 0.08)],
    )


def measure() -> dict[str, float]:
    from gateway.metrics.prometheus import GatewayMetrics

    metrics = GatewayMetrics(breakers=lambda: {"groq": False, "together": False, "local": False})
    events = [event(n) for n in range(EVENTS)]
    record_us, flush_us = [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for e in events:
            metrics.record(e)
        record_us.append((time.perf_counter() - start) * 1e6 / EVENTS)
        start = time.perf_counter()
        metrics.flush()
        flush_us.append((time.perf_counter() - start) * 1e6 / EVENTS)
    # A scrape on top: what /metrics costs to render (all label sets present).
    start = time.perf_counter()
    for _ in range(20):
        metrics.render()
    render_ms = (time.perf_counter() - start) * 1e3 / 20
    return {
        "record_us": statistics.median(record_us),
        "flush_us": statistics.median(flush_us),
        "render_ms": render_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure()
        print(" ".join(f"{k}={v:.4f}" for k, v in result.items()))
        return 0
    rows = [("one process", measure())]
    with tempfile.TemporaryDirectory(prefix="bench-prometheus-") as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.metrics", "--child"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        rows.append(("multiprocess", {k: float(v) for k, v in (p.split("=") for p in out)}))
    print(f"{EVENTS} generations x {REPEATS}, median per generation")
    print(f"{'mode':<14} {'record (request path)':>22} {'flush (background)':>19} {'scrape':>9}")
    for mode, r in rows:
        print(
            f"{mode:<14} {r['record_us']:>19.3f} µs {r['flush_us']:>16.2f} µs "
            f"{r['render_ms']:>6.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
