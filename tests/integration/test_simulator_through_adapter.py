"""Each simulated failure kind, as the gateway's own adapter receives and classifies it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from providers.catalog import Endpoint, Price
from providers.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamReset,
    UpstreamServerError,
    UpstreamTimeout,
)
from providers.http1 import HttpClient
from providers.openai_compatible import OpenAICompatibleProvider
from providers.provider import Timeouts, UpstreamCall
from providers.simulator.profile import Failures, Profile
from providers.simulator.server import Fleet, start_fleet
from tests.support.polling import eventually
from tests.support.scripted_http import Request, chunk, scripted_server

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
TIMEOUTS = Timeouts(connect=2.0, first_token=0.5, total=2.0)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"sim": Profile(completion_tokens=6, stream_cut_after=2)})
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
async def adapter() -> AsyncIterator[OpenAICompatibleProvider]:
    async with HttpClient() as client:
        yield OpenAICompatibleProvider(client)


def _endpoint(provider: str, base_url: str) -> Endpoint:
    return Endpoint(
        model="m",
        provider=provider,
        base_url=base_url,
        upstream_model="m",
        context_length=8192,
        price=Price(Decimal(1)),
    )


def _call(fleet: Fleet) -> UpstreamCall:
    return UpstreamCall(_endpoint("sim", fleet.url_for("sim")), BODY, None, TIMEOUTS)


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("http_500", UpstreamServerError, 500),
        ("http_502", UpstreamServerError, 502),
        ("http_503", UpstreamServerError, 503),
        ("http_429", UpstreamRateLimited, 429),
        ("hang", UpstreamTimeout, None),
        ("reset", UpstreamReset, None),
        ("invalid_json", UpstreamProtocolError, 200),  # a 200 with a bad body: maybe billed
    ],
)
async def test_failure_kinds_are_classified_as_the_upstream_sent_them(
    fleet: Fleet,
    adapter: OpenAICompatibleProvider,
    kind: str,
    error: type[UpstreamError],
    status: int | None,
) -> None:
    await fleet.set_profile("sim", failures=Failures(**{kind: 1.0}), retry_after_s=7)
    with pytest.raises(error) as info:
        await adapter.complete(_call(fleet))
    assert info.value.upstream_status == status
    assert info.value.answered is (kind == "invalid_json")  # never re-sent to the endpoint
    if kind == "http_429":
        assert info.value.retry_after == 7
        assert not info.value.counts_against_uptime and info.value.rate_limited
    else:
        assert info.value.counts_against_uptime
    assert info.value.fallback


async def test_stream_cut_after_k_chunks_surfaces_after_those_chunks(
    fleet: Fleet, adapter: OpenAICompatibleProvider
) -> None:
    await fleet.set_profile("sim", failures=Failures(stream_cut=1.0))
    received = []
    with pytest.raises((UpstreamReset, UpstreamProtocolError)):
        async for chunk in adapter.stream(_call(fleet)):
            received.append(chunk)
    assert len(received) == 2  # the chunks sent before the cut still arrived, in order


async def test_empty_completion_and_down_and_bad_key(
    fleet: Fleet, adapter: OpenAICompatibleProvider
) -> None:
    await fleet.set_profile("sim", failures=Failures(empty=1.0))
    completion = await adapter.complete(_call(fleet))
    assert completion.body["choices"][0]["message"]["content"] == ""
    await fleet.set_profile("sim", failures=Failures(), down=True)
    with pytest.raises(UpstreamServerError) as down:
        await adapter.complete(_call(fleet))
    assert down.value.upstream_status == 503
    await fleet.set_profile("sim", down=False, api_key="only-this-key")
    with pytest.raises(UpstreamRejected) as rejected:
        await adapter.complete(_call(fleet))
    assert rejected.value.upstream_status == 401 and rejected.value.fallback


async def test_profile_change_takes_effect_without_restart(
    fleet: Fleet, adapter: OpenAICompatibleProvider
) -> None:
    ok = await adapter.complete(_call(fleet))
    assert ok.usage.completion_tokens == 6
    await fleet.set_profile("sim", completion_tokens=3)
    changed = await adapter.complete(_call(fleet))
    assert changed.usage.completion_tokens == 3


async def test_the_stream_ends_at_done_while_the_upstream_body_is_still_open() -> None:
    """`[DONE]` ends the client's stream at once; the rest of the upstream body is read in the
    background, so the connection still goes back to the pool for the next request."""
    release = asyncio.Event()
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    async with scripted_server() as server, HttpClient() as client:

        @server.route("/v1/chat/completions")
        async def lingering(request: Request, writer: asyncio.StreamWriter) -> bool:
            event = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
            writer.write(head + chunk(event) + chunk(b"data: [DONE]\n\n"))
            await release.wait()  # the body's end comes only once the client's stream is over
            writer.write(b"0\r\n\r\n")
            return True

        endpoint = _endpoint("slow-end", server.url("/v1"))
        adapter = OpenAICompatibleProvider(client)
        for _ in range(2):
            chunks = [c async for c in adapter.stream(UpstreamCall(endpoint, BODY, None, TIMEOUTS))]
            assert [c.data["choices"][0]["delta"] for c in chunks] == [{"content": "hi"}]
            release.set()  # only reached because the stream ended before the body did
            await eventually(lambda: not adapter._finishing, what="the body read to its end")
            release.clear()
        assert [r.connection for r in server.requests] == [1, 1]  # kept and reused
