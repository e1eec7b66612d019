"""No answered generation without a ledger event: when Redis can't take the end-of-request
batch the event is spooled to disk and replayed; a full spool refuses requests before any
upstream is called; Redis killed (-9) and restarted under load loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import generations
from gateway.keys.limiter import LimiterUnavailable, Settlement
from gateway.keys.pico import to_pico
from gateway.ledger.events import GenerationEvent
from gateway.ledger.spool import Spool, SpoolFull
from gateway.ledger.stream import RedisStreamLedger
from gateway.resp import RespClient
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.integration.keys_fixtures import bearer, create_key, key_settings
from tests.integration.ledger_fixtures import chat, settings_for
from tests.support.gateway import free_port, run_gateway, write_catalog
from tests.support.polling import eventually


def event(n: int) -> GenerationEvent:
    return GenerationEvent(f"gen-spool-{n}", datetime.now(UTC), "m", "m", "balanced", False)


async def test_spooled_events_are_replayed_into_the_stream_once_redis_takes_them(
    redis: Redis, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    resp = RespClient.from_url(redis_url)
    stream = RedisStreamLedger(redis, redis_prefix, claim_idle_s=30, resp=resp)
    try:
        spool = Spool(tmp_path, 1 << 20, stream.key)
        for n in range(3):
            await spool.append(event(n))
        assert spool.depth == 3
        await redis.set(stream.key, "not a stream")  # XADD answers WRONGTYPE
        assert await spool.replay(stream) == 0 and spool.depth == 3
        await redis.delete(stream.key)
        assert await spool.replay(stream) == 3
        assert spool.depth == 0 and await redis.xlen(stream.key) == 3
        assert not spool.path.exists()

        # A process that died with a spool: the next one replays its file.
        departed = Spool(tmp_path, 1 << 20, stream.key)
        await departed.append(event(9))
        departed.close()  # its lock goes with it
        assert await Spool(tmp_path, 1 << 20, stream.key).replay(stream) == 1
        assert await redis.xlen(stream.key) == 4
    finally:
        await resp.aclose()


async def test_a_full_spool_refuses_new_requests(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 4096)
    while spool.size < 4096:
        spool.check_accepting()
        await spool.append(event(spool.depth))
    await spool.append(event(99))  # a request admitted before it filled still gets its event
    with pytest.raises(SpoolFull) as refused:
        spool.check_accepting()
    assert refused.value.client_status == 503


async def test_answers_are_served_and_spooled_while_the_stream_refuses_then_503_when_full(
    engine: AsyncEngine,
    pg_database: str,
    redis: Redis,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=5)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    settings = settings_for(
        catalog,
        pg_database,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        spool_dir=tmp_path / "spool",
        spool_max_bytes=8192,
    )
    try:
        async with run_gateway(settings) as gateway, httpx.AsyncClient(timeout=30) as client:
            stream_key = f"{redis_prefix}ledger:events"
            await redis.delete(stream_key)
            await redis.set(stream_key, "not a stream")  # every XADD fails
            url = f"{gateway.v1}/chat/completions"
            served = []
            for n in range(60):
                answer = await client.post(url, json=chat(f"q{n}", stream=n % 2 == 1))
                if answer.status_code == 503:
                    break
                assert (answer.status_code == 200 and "[DONE]" in answer.text) or n % 2 == 0
                served.append(n)
            else:
                raise AssertionError("the spool never filled")
            assert answer.json()["error"]["metadata"]["reason"] == "ledger_spool_full"
            assert fleet.stats()["a"].requests == len(served)  # refused before the upstream
            ready = await client.get(f"{gateway.url}/ready")
            assert ready.status_code == 503  # a balancer sends the traffic elsewhere
            assert ready.json()["spool"]["depth"] == len(served)
            assert ready.json()["spool"]["accepting"] is False
            metrics = (await client.get(f"{gateway.url}/metrics")).text
            assert f"gateway_ledger_spool_depth {len(served)}" in metrics

            await redis.delete(stream_key)  # Redis takes events again: the spool drains

            async def in_ledger() -> bool:
                async with engine.connect() as conn:
                    count = (await conn.execute(select(func.count(generations.c.id)))).scalar()
                return count == len(served)

            await eventually(in_ledger, 20, what="every spooled generation in the ledger")
            assert gateway.resources.ledger.spool.depth == 0
            assert (await client.post(url, json=chat("after"))).status_code == 200
    finally:
        await fleet.close()


# -- Redis killed and restarted under load ---------------------------------------------------


@contextlib.contextmanager
def own_redis(directory: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A redis-server of the test's own (AOF, fsync per write), a function that kills it with
    SIGKILL and one that starts it again on the same port and files."""
    port = free_port()
    args = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--protected-mode",
        "no",
    ]
    processes = [subprocess.Popen(args, stdout=subprocess.DEVNULL)]

    def kill() -> None:
        processes[-1].kill()
        processes[-1].wait()

    def start() -> None:
        processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))

    try:
        yield f"redis://127.0.0.1:{port}/0", kill, start
    finally:
        for process in processes:
            process.kill()
            process.wait()


async def _answers(url: str) -> None:
    async def up() -> bool:
        client = Redis.from_url(url)
        try:
            return bool(await client.ping())
        except OSError:
            return False
        except Exception:
            return False
        finally:
            await client.aclose()

    await eventually(up, 10, what="redis-server up")


async def test_redis_killed_and_restarted_under_load_loses_no_served_generation(
    engine: AsyncEngine, pg_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=12, ttft_ms=5, tokens_per_s=400)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    (tmp_path / "redis").mkdir()
    with own_redis(tmp_path / "redis") as (redis_url, kill, start):
        await _answers(redis_url)
        settings = settings_for(
            catalog,
            pg_database,
            redis_url=redis_url,
            redis_prefix="gw:",
            spool_dir=tmp_path / "spool",
            claim_idle_s=1,  # a read whose reply died with Redis is claimed again soon
        )
        statuses: list[int] = []
        try:
            async with run_gateway(settings) as gateway, httpx.AsyncClient(timeout=60) as client:
                url = f"{gateway.v1}/chat/completions"
                stop = asyncio.Event()

                async def load(worker: int) -> None:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        body = chat(f"w{worker} r{n}", stream=n % 2 == 0)
                        answer = await client.post(url, json=body)
                        statuses.append(answer.status_code)
                        if answer.status_code == 200 and n % 2 == 0:
                            assert answer.text.endswith("data: [DONE]\n\n")

                workers = [asyncio.create_task(load(w)) for w in range(8)]
                await eventually(lambda: len(statuses) >= 40, 20, what="load running")
                kill()  # kill -9 mid-load: answers go on, their events to the spool
                down = len(statuses)
                await eventually(lambda: len(statuses) >= down + 20, 20, what="load while down")
                start()  # again, from its AOF
                await _answers(redis_url)
                before = len(statuses)
                await eventually(lambda: len(statuses) >= before + 40, 20, what="load after")
                stop.set()
                await asyncio.gather(*workers)
                served = fleet.stats()["a"].outcomes.get("ok", 0)

                async def all_in_ledger() -> bool:
                    async with engine.connect() as conn:
                        count = (await conn.execute(select(func.count(generations.c.id)))).scalar()
                    return count == served

                await eventually(all_in_ledger, 60, what=f"ledger rows == {served} served")
                assert set(statuses) == {200}, set(statuses)
                assert served == len(statuses)
                assert "ledger event spooled" in caplog.text  # the outage was met mid-request
        finally:
            await fleet.close()


async def test_a_settlement_lost_with_its_event_is_sent_again_on_replay_once(
    engine: AsyncEngine, pg_database: str, tmp_path: Path
) -> None:
    fleet = await start_fleet({"a": Profile(completion_tokens=5, ttft_ms=1000)})
    catalog = write_catalog(tmp_path / "catalog.toml", {"a": fleet.url_for("a")})
    (tmp_path / "redis").mkdir()
    with own_redis(tmp_path / "redis") as (redis_url, kill, start):
        await _answers(redis_url)
        settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix="gw:")
        settings.ledger.spool_dir = tmp_path / "spool"
        try:
            async with (
                run_gateway(settings) as gateway,
                httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
            ):
                key_id, secret = await create_key(client, name="spooled", limit="1")
                asked = asyncio.create_task(
                    client.post("/v1/chat/completions", json=chat("hi"), headers=bearer(secret))
                )
                await eventually(lambda: fleet.stats()["a"].requests == 1, 10, what="upstream")
                kill()  # admitted and holding; Redis goes before the answer ends
                answer = await asyncio.wait_for(asked, 20)
                assert answer.status_code == 200
                cost = Decimal(str(answer.json()["usage"]["cost"]))
                spool = gateway.resources.ledger.spool
                assert cost > 0 and spool.depth == 1
                start()
                await _answers(redis_url)
                keys = gateway.resources.keys
                key = keys.cache.get(key_id)

                async def settled() -> bool:
                    try:
                        usage = await keys.limiter.usage(key)
                    except LimiterUnavailable:
                        return False
                    return (usage.total, usage.held) == (to_pico(cost), 0)

                await eventually(settled, 20, what="the key settled from the spool")
                await eventually(lambda: spool.depth == 0, 10, what="the spool drained")
                again = Settlement(key_id, "", to_pico(cost), 0, 0)
                await keys.limiter.resettle(answer.json()["id"], again)  # a second replay
                assert await settled()  # ...changes nothing
        finally:
            await fleet.close()
