"""When the local llama-server can't serve: busy slots, not up yet, loading, killed.

A real llama-server (tiny random model) beside a simulated hosted provider, through the gateway;
the loading state alone comes from a loopback stub, since the tiny model loads too fast to see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web
from openai import AsyncOpenAI

from gateway.settings import Settings
from providers.llamacpp_health import LlamaCppMonitor
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.e2e.conftest import embedded_settings
from tests.e2e.llamacpp_fixtures import (
    LOCAL_ID,
    MODEL,
    busy_slot,
    eventually,
    generation_record,
    llama_server,
    write_local_catalog,
)
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.llama import LlamaServer, ensure_llama_server, free_port
from tests.support.tiny_gguf import write_tiny_gguf

HELLO: Any = [{"role": "user", "content": "hello"}]
FLOOR = f"{MODEL}:floor"  # cheapest first: `local` whenever it is available
EXPLAIN = {"debug": {"route": True}}
LONG_GENERATION = {"max_tokens": 7000, "ignore_eos": True}
SLOT_CTX = 8192

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_llama_server()
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-model") / "tiny.gguf")


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"sim": Profile(completion_tokens=5)})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
async def one_slot(tiny_model: Path) -> AsyncIterator[LlamaServer]:
    async with llama_server(tiny_model, slots=1, ctx=SLOT_CTX) as server:
        yield server


class Stack:
    """A gateway in front of `local` + `sim`, with the openai client and the load monitor."""

    def __init__(self, gateway: RunningGateway, client: AsyncOpenAI) -> None:
        self.gateway = gateway
        self.client = client
        monitor = gateway.resources.llamacpp
        assert monitor is not None
        self.monitor: LlamaCppMonitor = monitor

    async def ask(self, model: str = FLOOR, **extra: Any) -> Any:
        return await self.client.chat.completions.create(
            model=model, messages=HELLO, max_tokens=4, extra_body={**EXPLAIN, **extra}
        )


async def served_by(stack: Stack, **extra: Any) -> str:
    answer = await stack.ask(**extra)
    provider: str = (answer.model_extra or {})["provider"]
    return provider


async def listed_server_state(stack: Stack) -> dict[str, Any]:
    """The llama.cpp state ops see in the endpoints listing."""
    async with httpx.AsyncClient(base_url=stack.gateway.url) as client:
        resp = await client.get(f"/api/v1/models/{MODEL}/endpoints")
    local = next(e for e in resp.json()["data"]["endpoints"] if e["provider_name"] == "local")
    state: dict[str, Any] = local["stats"]["llamacpp"]
    return state


def local_candidate(answer: Any) -> dict[str, Any]:
    route = (answer.model_extra or {})["route"]
    found: dict[str, Any] = next(c for c in route["candidates"] if c["endpoint"] == LOCAL_ID)
    return found


@asynccontextmanager
async def open_stack(settings: Settings) -> AsyncIterator[Stack]:
    async with (
        run_gateway(settings) as gateway,
        AsyncOpenAI(base_url=gateway.v1, api_key="unused", max_retries=0) as client,
    ):
        yield Stack(gateway, client)


@pytest.fixture
def stack_for(tmp_path: Path, fleet: Fleet) -> Callable[..., AbstractAsyncContextManager[Stack]]:
    """Opens a gateway whose catalog has `local` at the given URL (plus `sim`)."""

    def opener(local_url: str, local_extra: str = "") -> AbstractAsyncContextManager[Stack]:
        catalog = write_local_catalog(
            tmp_path / "catalog.toml",
            local_url,
            fleet.url_for("sim"),
            local_extra=local_extra,
            context_length=SLOT_CTX,
        )
        return open_stack(embedded_settings(tmp_path, catalog))

    return opener


async def test_busy_slots_spill_over_to_the_hosted_provider(
    one_slot: LlamaServer, stack_for: Any
) -> None:
    async with stack_for(f"{one_slot.base_url}/v1") as stack:
        await eventually(lambda: stack.monitor.unavailable(LOCAL_ID) is None)
        assert await served_by(stack) == "local"

        async with busy_slot(one_slot):
            await eventually(lambda: stack.monitor.unavailable(LOCAL_ID) is not None)
            answer = await stack.ask()
            assert (answer.model_extra or {})["provider"] == "sim"
            assert local_candidate(answer)["gate_reason"] == (
                "unavailable: every slot is busy (1/1)"
            )
            # An explicit provider.order doesn't make the busy server queue the request either.
            assert await served_by(stack, provider={"order": ["local", "sim"]}) == "sim"
            assert (await listed_server_state(stack))["busy_slots"] == 1

        await eventually(lambda: stack.monitor.unavailable(LOCAL_ID) is None)
        assert await served_by(stack) == "local"


async def test_with_spill_over_off_the_request_queues_for_the_local_slot(
    one_slot: LlamaServer, stack_for: Any
) -> None:
    async with stack_for(f"{one_slot.base_url}/v1", "spill_over = false") as stack:
        async with busy_slot(one_slot):

            def saturated() -> bool:
                state = stack.monitor.state(LOCAL_ID)
                return state is not None and state.saturated

            await eventually(saturated)
            assert stack.monitor.unavailable(LOCAL_ID) is None
            waiting = asyncio.create_task(stack.ask())
            await eventually(lambda: _deferred(one_slot))
        answer = await waiting
        assert (answer.model_extra or {})["provider"] == "local"


async def _deferred(server: LlamaServer) -> bool:
    async with httpx.AsyncClient(timeout=5) as client:
        metrics = (await client.get(f"{server.base_url}/metrics")).text
    return "llamacpp:requests_deferred 1" in metrics


async def test_gateway_started_before_llama_server_serves_locally_once_it_is_up(
    tiny_model: Path, stack_for: Any
) -> None:
    port = free_port()
    async with stack_for(f"http://127.0.0.1:{port}/v1") as stack:
        state = stack.monitor.state(LOCAL_ID)
        assert state is not None and state.status == "down"
        answer = await stack.ask()
        assert (answer.model_extra or {})["provider"] == "sim"
        assert local_candidate(answer)["gate_reason"].startswith("unavailable: the server is down")
        assert [a["provider"] for a in answer.model_extra["route"]["attempts"]] == ["sim"]

        async with llama_server(tiny_model, port=port, slots=1, ctx=2048):
            await eventually(lambda: stack.monitor.unavailable(LOCAL_ID) is None)
            assert await served_by(stack) == "local"


LOADING = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}


@pytest.fixture
async def loading_stub() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback stand-in for llama-server while it loads: every route answers 503 Loading."""
    calls: list[str] = []

    async def loading(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response(LOADING, status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", loading)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/v1", calls
    finally:
        await runner.cleanup()


async def test_loading_stub_is_unavailable_not_failing(
    loading_stub: tuple[str, list[str]], stack_for: Any
) -> None:
    url, calls = loading_stub
    async with stack_for(url) as stack:
        state = stack.monitor.state(LOCAL_ID)
        assert state is not None and state.status == "loading"
        assert (await listed_server_state(stack))["status"] == "loading"
        answer = await stack.ask()
        assert (answer.model_extra or {})["provider"] == "sim"
        assert local_candidate(answer)["gate_reason"] == (
            "unavailable: the server is loading the model"
        )
        assert "/v1/chat/completions" not in calls  # skipped without being called

        with pytest.raises(openai.APIStatusError) as failed:
            await stack.ask(MODEL, provider={"only": ["local"]})
        assert failed.value.status_code == 503
        body: Any = failed.value.body
        assert body["metadata"]["error_class"] == "UpstreamUnavailable"
        assert "Loading model" in body["message"]
        assert calls.count("/v1/chat/completions") == 1  # not retried: it is not failing

        routing = stack.gateway.resources.routing
        assert routing is not None
        snapshot = await routing.live.refresh()
        stats = snapshot.get(LOCAL_ID)
        assert stats is None or stats.rolling.errors == 0  # uptime untouched


async def test_server_killed_mid_request_falls_back_to_the_hosted_provider(
    one_slot: LlamaServer, stack_for: Any
) -> None:
    async with stack_for(f"{one_slot.base_url}/v1") as stack:
        await eventually(lambda: stack.monitor.unavailable(LOCAL_ID) is None)
        pending = asyncio.create_task(stack.ask(**LONG_GENERATION))
        await eventually(lambda: stack.monitor.unavailable(LOCAL_ID) is not None)  # generating
        one_slot.process.kill()
        answer = await pending
        extra = answer.model_extra or {}
        assert extra["provider"] == "sim"
        attempts = extra["route"]["attempts"]
        assert attempts[0]["provider"] == "local"
        assert attempts[0]["error_class"] == "UpstreamReset"
        assert attempts[-1]["provider"] == "sim" and attempts[-1]["outcome"] == "ok"
        await eventually(lambda: stack.monitor.unavailable(LOCAL_ID) is not None)
        assert await served_by(stack) == "sim"


async def test_server_killed_mid_stream_ends_the_stream_with_an_error(
    one_slot: LlamaServer, stack_for: Any
) -> None:
    async with stack_for(f"{one_slot.base_url}/v1") as stack:
        stream = await stack.client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            stream=True,
            max_tokens=7000,
            extra_body={"provider": {"only": ["local"]}, "ignore_eos": True},
        )
        received = 0
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                received += 1
                generation_id = chunk.id
                if received == 3:
                    one_slot.process.kill()
        assert received >= 3
        record = await generation_record(stack.gateway.url, generation_id)
        assert record["provider_name"] == "local" and record["status"] == "error"
