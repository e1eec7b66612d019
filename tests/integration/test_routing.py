"""Routing end to end: the simulator behind a real gateway, live stats on real Redis.

Outages move balanced traffic and back, nitro follows the measured fastest provider,
Retry-After is honoured, streams fall back only before their first byte, and two gateways on
one Redis agree on a provider's outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.integration.routing_fixtures import (
    MODEL,
    chat,
    drop_prefix,
    gateway_client,
    gateway_process,
    routing_settings,
    served_by,
    until,
)
from tests.integration.simulator_fixtures import stream_json
from tests.support.gateway import write_catalog

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    # Equally fast and paced, so measured speed differences are noise-free enough that
    # balanced traffic follows price.
    paced = Profile(completion_tokens=8, ttft_ms=5, tokens_per_s=800)
    fleet = await start_fleet({"a": paced, "b": paced})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
async def prefix(redis_url: str, redis_prefix: str) -> AsyncIterator[str]:
    yield redis_prefix
    await drop_prefix(redis_url, redis_prefix)


def requests_to(fleet: Fleet, name: str) -> int:
    return fleet.stats()[name].requests


async def test_balanced_leaves_a_down_provider_within_seconds_and_returns_after_recovery(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
    settings = routing_settings(tmp_path, catalog, redis_url, prefix)
    async with gateway_client(settings) as (_, client):

        async def mostly_a() -> bool:  # a is half the price: ~80% of balanced traffic
            return (await served_by(client, 10)).count("a") >= 6

        await until(mostly_a, timeout_s=5, what="balanced traffic mostly on the cheapest")

        await fleet.set_profile("a", down=True)
        down_at = time.monotonic()

        async def off_a() -> bool:
            seen = requests_to(fleet, "a")
            served = await served_by(client, 10)
            assert all(p == "b" for p in served), served  # fallback hides the outage
            return requests_to(fleet, "a") == seen  # and a is no longer even tried

        took = await until(off_a, timeout_s=5, what="traffic off the down provider")
        assert took < 5

        await fleet.set_profile("a", down=False)

        await until(mostly_a, timeout_s=8, what="traffic back after recovery")
    assert time.monotonic() - down_at < 15


async def test_nitro_tracks_the_measured_fastest_provider(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    fleet = await start_fleet(
        {
            "a": Profile(completion_tokens=20, tokens_per_s=2000),
            "b": Profile(completion_tokens=20, tokens_per_s=200),
        }
    )
    try:
        catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
        settings = routing_settings(tmp_path, catalog, redis_url, prefix, explore_share=0.2)
        async with gateway_client(settings) as (_, client):

            async def led_by(name: str) -> bool:
                return (await served_by(client, 10, model=f"{MODEL}:nitro")).count(name) >= 7

            await until(lambda: led_by("a"), timeout_s=6, what="nitro on the fast provider")
            await fleet.set_profile("a", tokens_per_s=100)
            await fleet.set_profile("b", tokens_per_s=4000)
            await until(lambda: led_by("b"), timeout_s=8, what="nitro following the speed-up")
            r = await chat(client, model=f"{MODEL}:nitro", headers={"X-Route-Explain": "1"})
            assert r.headers["X-Route-Mode"] == "nitro"
            route = r.json()["route"]
            figures = {c["provider"]: c["score"]["throughput"] for c in route["candidates"]}
            assert figures["b"] > figures["a"]
    finally:
        await fleet.close()


async def test_retry_after_takes_a_provider_out_of_rotation_for_that_long(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    await fleet.set_profile("a", failures={"http_429": 1.0}, retry_after_s=2)
    catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
    settings = routing_settings(tmp_path, catalog, redis_url, prefix)
    async with gateway_client(settings) as (_, client):
        started = time.monotonic()
        r = await chat(client, provider={"order": ["a", "b"]})
        assert r.status_code == 200 and r.json()["provider"] == "b"
        assert r.headers["X-Route-Attempts"] == "2"
        assert time.monotonic() - started < 1.0  # moved on at once, did not wait 2 s
        limited_at = time.monotonic()
        assert requests_to(fleet, "a") == 1

        # While Retry-After runs, even a request that orders `a` first doesn't touch it.
        while True:
            r = await chat(client, provider={"order": ["a", "b"]})
            if time.monotonic() - limited_at >= 1.8:
                break  # this one may have run into the end of the Retry-After
            assert r.json()["provider"] == "b" and r.headers["X-Route-Attempts"] == "1"
            assert requests_to(fleet, "a") == 1

        async def tried_again() -> bool:
            await chat(client, provider={"order": ["a", "b"]})
            return requests_to(fleet, "a") > 1

        await until(tried_again, timeout_s=3, what="a back in rotation")
        assert time.monotonic() - started >= 2.0 - 0.05  # not before its Retry-After


async def test_exacto_waits_out_retry_after_but_not_past_its_deadline(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    await fleet.set_profile("a", failures={"http_429": 1.0}, retry_after_s=1)
    catalog = write_catalog(
        tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")}, exacto="a"
    )
    settings = routing_settings(tmp_path, catalog, redis_url, prefix, generation_timeout_s=5)
    async with gateway_client(settings) as (_, client):

        async def limited_once() -> bool:
            await asyncio.sleep(0.005)  # a polling interval on the simulator's counter
            return requests_to(fleet, "a") >= 1

        async def heal_after_first_429() -> None:
            await until(limited_once, timeout_s=5, what="the first 429")
            await fleet.set_profile("a", failures={"http_429": 0.0})

        healer = asyncio.create_task(heal_after_first_429())
        started = time.monotonic()
        r = await chat(client, model=f"{MODEL}:exacto")
        await healer
        assert r.status_code == 200 and r.json()["provider"] == "a"
        assert r.headers["X-Route-Mode"] == "exacto" and r.headers["X-Route-Attempts"] == "2"
        assert time.monotonic() - started >= 0.9
        assert requests_to(fleet, "b") == 0

    # A Retry-After beyond the generation's deadline is not waited for.
    await fleet.set_profile("a", failures={"http_429": 1.0}, retry_after_s=30)
    settings = routing_settings(tmp_path, catalog, redis_url, prefix + "x:", generation_timeout_s=2)
    async with gateway_client(settings) as (_, client):
        started = time.monotonic()
        r = await chat(client, model=f"{MODEL}:exacto")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 29
        assert time.monotonic() - started < 1.5  # answered now, not after 30 s
        assert requests_to(fleet, "b") == 0
    await drop_prefix(redis_url, prefix + "x:")


async def test_stream_cut_before_the_first_byte_falls_back(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    await fleet.set_profile("a", failures={"stream_cut": 1.0}, stream_cut_after=0)
    catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
    settings = routing_settings(tmp_path, catalog, redis_url, prefix, retries_per_endpoint=0)
    async with gateway_client(settings) as (_, client):
        r = await chat(client, stream=True, provider={"order": ["a", "b"]})
        assert r.status_code == 200
        chunks = stream_json(r.text)
        assert {c["provider"] for c in chunks} == {"b"}
        assert chunks[-1]["usage"]["completion_tokens"] == 8
        assert r.headers["X-Route-Attempts"] == "2"
        assert requests_to(fleet, "a") == 1


async def test_stream_cut_after_the_first_byte_ends_with_an_error_chunk(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    await fleet.set_profile("a", failures={"stream_cut": 1.0}, stream_cut_after=3)
    catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
    settings = routing_settings(tmp_path, catalog, redis_url, prefix)
    async with gateway_client(settings) as (gw, client):
        r = await chat(client, stream=True, provider={"order": ["a", "b"]})
        assert r.status_code == 200
        chunks = stream_json(r.text)
        assert chunks[0]["provider"] == "a"
        last = chunks[-1]
        assert last["choices"][0]["finish_reason"] == "error" and last["error"]["code"] == 502
        assert last["error"]["metadata"]["reason"] == "upstream_mid_stream"
        assert last["error"]["metadata"]["error_type"] == "server_error"
        assert requests_to(fleet, "b") == 0  # nothing is retried after the first byte

        async def counted() -> bool:  # the mid-stream failure counts against a's uptime
            stats = gw.resources.endpoint_stats().get(f"{MODEL}@a", {})
            return stats.get("requests_last_2s", 0) >= 1 and stats.get("uptime_last_2s") == 0.0

        await until(counted, timeout_s=3, what="mid-stream failure in the stats")


async def test_two_gateways_on_one_redis_agree_on_an_outage(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
    one = routing_settings(tmp_path, catalog, redis_url, prefix, db_name="one")
    two = routing_settings(tmp_path, catalog, redis_url, prefix, db_name="two")
    async with gateway_client(one) as (_, first), gateway_client(two) as (gw2, second):
        await fleet.set_profile("a", down=True)
        # Only the first gateway meets the outage ...
        while requests_to(fleet, "a") < 3:
            r = await chat(first, provider={"order": ["a", "b"]})
            assert r.json()["provider"] == "b"
        seen = requests_to(fleet, "a")

        # ... the second learns it through Redis and routes around a without trying it.
        async def second_knows() -> bool:
            listing = await second.get(f"/api/v1/models/{MODEL}/endpoints")
            entry = next(
                e for e in listing.json()["data"]["endpoints"] if e["provider_name"] == "a"
            )
            stats = entry["stats"] or {}
            return (stats.get("breaker") or {}).get("phase") in ("open", "half_open")

        await until(second_knows, timeout_s=3, what="the outage to reach the second gateway")
        r = await chat(second, provider={"order": ["a", "b"]}, headers={"X-Route-Explain": "1"})
        route = r.json()["route"]
        assert r.json()["provider"] == "b"
        assert [a["provider"] for a in route["attempts"]] == ["b"]
        assert f"{MODEL}@a" in route["skipped"] or route["gated"][f"{MODEL}@a"]
        assert requests_to(fleet, "a") == seen
        assert gw2.resources.endpoint_stats()[f"{MODEL}@a"]["uptime_last_2s"] == 0.0


async def test_explanation_and_filters_over_http(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
    settings = routing_settings(tmp_path, catalog, redis_url, prefix)
    async with gateway_client(settings) as (_, client):
        r = await chat(client, debug={"route": True}, provider={"ignore": ["a"]})
        assert r.status_code == 200 and r.headers["X-Route-Mode"] == "balanced"
        route = r.json()["route"]
        assert route["rejected"] == {f"{MODEL}@a": "ignore: provider.ignore names it"}
        assert [c["provider"] for c in route["candidates"]] == ["b"]
        assert route["attempts"][0]["outcome"] == "ok"

        r = await chat(client, provider={"max_price": {"prompt": 0.001}})
        assert r.status_code == 404
        assert set(r.json()["error"]["metadata"]["filters"]) == {"max_price"}

        r = await chat(client, provider={"only": ["a"], "ignore": ["a"]})
        assert r.status_code == 400

        r = await chat(client, model=f"{MODEL}:floor", provider={"sort": "throughput"})
        assert r.status_code == 400

        r = await chat(client, provider={"sort": {"by": "price", "partition": "none"}})
        assert r.headers["X-Route-Mode"] == "floor" and r.json()["provider"] == "a"


async def test_a_gateway_process_and_an_in_loop_gateway_agree_on_an_outage(
    fleet: Fleet, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    catalog = write_catalog(tmp_path / "c.toml", {n: fleet.url_for(n) for n in ("a", "b")})
    settings = routing_settings(tmp_path, catalog, redis_url, prefix)
    async with (
        gateway_process(tmp_path, catalog, redis_url, prefix) as other,
        gateway_client(settings) as (gw, here),
    ):
        await fleet.set_profile("a", down=True)
        while requests_to(fleet, "a") < 3:  # only the other process meets the outage
            r = await chat(other, provider={"order": ["a", "b"]})
            assert r.status_code == 200 and r.json()["provider"] == "b"
        seen = requests_to(fleet, "a")

        async def known_here() -> bool:
            state = gw.resources.routing.live.snapshot().breaker(f"{MODEL}@a")
            return state is not None and state.open

        await until(known_here, timeout_s=3, what="the other process's outage to arrive")
        for _ in range(5):
            r = await chat(here, provider={"order": ["a", "b"]})
            assert r.json()["provider"] == "b" and r.headers["X-Route-Attempts"] == "1"
        assert requests_to(fleet, "a") == seen


async def test_a_client_that_disconnects_cancels_the_upstream_stream(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    slow = await start_fleet({"a": Profile(completion_tokens=400, tokens_per_s=40)})
    try:
        catalog = write_catalog(tmp_path / "c.toml", {"a": slow.url_for("a")})
        settings = routing_settings(tmp_path, catalog, redis_url, prefix)
        async with gateway_client(settings) as (_, client):
            payload = {
                "model": MODEL,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            }
            async with client.stream("POST", "/v1/chat/completions", json=payload) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        break  # the first chunk arrived; now walk away mid-answer

            async def upstream_closed() -> bool:
                await asyncio.sleep(0.01)  # polling interval
                return slow.open_connections == 0

            took = await until(upstream_closed, timeout_s=5, what="the upstream stream closed")
            assert took <= 5 and slow.open_connections == 0
    finally:
        await slow.close()
