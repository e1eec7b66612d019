"""`/metrics` of `gateway serve --workers 2`: after a burst, the request counters parsed with
`prometheus_client`'s parser sum to the requests sent, whichever worker answers the scrape."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from providers.simulator.profile import Failures, Profile
from providers.simulator.server import start_fleet
from tests.integration.keys_fixtures import migrate
from tests.support.gateway import free_port, write_catalog
from tests.support.polling import eventually

BURST = 80
CONCURRENCY = 8
MAX_REQUESTS = 800  # keep going until both workers took some, but not forever
MODEL = "openai/gpt-oss-20b"


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_metrics_sum_over_two_workers(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    await migrate(pg_database)
    fleet = await start_fleet(
        {
            "alpha": Profile(completion_tokens=10),
            "beta": Profile(completion_tokens=6, seed=3, failures=Failures(http_500=0.3)),
        }
    )
    catalog = write_catalog(
        tmp_path / "catalog.toml", {p: fleet.url_for(p) for p in ("alpha", "beta")}
    )
    metrics_dir = tmp_path / "prometheus"
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "DATABASE_URL", "REDIS_", "PROMETHEUS_"))
    }
    env.update(
        GATEWAY_CATALOG=str(catalog),
        DATABASE_URL=pg_database,
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        GATEWAY_ROUTING_RETRIES_PER_ENDPOINT="0",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--workers",
        "2",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:

            async def healthy() -> bool:
                assert proc.returncode is None, f"gateway serve exited with {proc.returncode}"
                try:
                    return (await client.get("/health", timeout=1)).status_code == 200
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
                    return False

            await eventually(healthy, timeout_s=60, what="gateway serve --workers 2 up")

        statuses: Counter[int] = Counter()
        modes = ("", ":nitro", ":floor")

        async def one(i: int, burst: httpx.AsyncClient) -> None:
            body = {
                "model": MODEL + modes[i % len(modes)],
                "messages": [{"role": "user", "content": f"hello {i}"}],
                "stream": i % 2 == 0,
            }
            response = await burst.post("/v1/chat/completions", json=body)
            await response.aread()
            statuses[response.status_code] += 1

        def counting_workers() -> set[str]:  # a worker's counter file appears at its first flush
            return {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}

        # New connections for each slice, so both workers' accept loops take some; the kernel
        # decides who accepts, so slices go on (bounded) until both workers have counted.
        sent = 0
        while True:
            async with httpx.AsyncClient(base_url=url, timeout=20) as burst:
                await asyncio.gather(*(one(i, burst) for i in range(sent, sent + CONCURRENCY)))
            sent += CONCURRENCY
            if sent < BURST:
                continue
            try:  # both workers flush within 0.5 s of counting
                await eventually(
                    lambda: len(counting_workers()) == 2, timeout_s=1.5, interval_s=0.05
                )
                break
            except AssertionError:
                if sent >= MAX_REQUESTS:
                    raise AssertionError(f"one worker took all {sent} requests") from None
        assert sum(statuses.values()) == sent

        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            requests_total = -1.0

            async def summed() -> bool:
                nonlocal requests_total
                samples = _samples((await client.get("/metrics")).text)
                requests_total = sum(v for _, v in samples.get("gateway_requests_total", []))
                return requests_total == sent

            await eventually(summed, timeout_s=15, what="gateway_requests_total == requests sent")
            # Every scrape, whichever worker takes it, agrees (fresh connections each time).
            for _ in range(6):
                async with httpx.AsyncClient(base_url=url, timeout=20) as scraper:
                    samples = _samples((await scraper.get("/metrics")).text)
                total = sum(v for _, v in samples["gateway_requests_total"])
                assert total == sent, samples["gateway_requests_total"]
            ok = sum(
                v for labels, v in samples["gateway_requests_total"] if labels["status"] == "ok"
            )
            assert ok == statuses[200]
            attempts = samples["gateway_attempts_total"]
            assert sum(v for _, v in attempts) >= sent
            assert any(labels["outcome"] != "ok" for labels, _ in attempts)  # beta's 500s
            latency_count = sum(v for _, v in samples["gateway_latency_seconds_count"])
            assert latency_count == sent - sum(
                v for labels, v in samples["gateway_requests_total"] if labels["provider"] == "none"
            )
            tokens = {
                (labels["provider"], labels["kind"]): v
                for labels, v in samples["gateway_tokens_total"]
            }
            assert tokens[("alpha", "completion")] > 0
            assert "gateway_cost_usd_total" in samples
            assert {labels["provider"] for labels, _ in samples["gateway_breaker_open"]} == {
                "alpha",
                "beta",
            }
            assert "gateway_ledger_queue_depth" in samples  # the ledger gauges still there
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await fleet.close()
