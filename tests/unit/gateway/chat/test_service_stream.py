"""The chat service's stream with fakes (scripted upstream, in-process ledger): every way a
stream can end gives exactly one ledger event, the stream never closed before its relay ran
included."""

from __future__ import annotations

import json

from gateway.chat.request import decode_chat_request
from gateway.chat.service import Caller, ChatService
from gateway.ledger.queue import InProcessLedger
from providers.provider import Timeouts
from routing.executor import Executor
from routing.planner import Planner
from tests.unit.routing.fakes import MODEL, Script, ScriptedProvider, cheapest_first

BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
).encode()


def service(script: Script) -> tuple[ChatService, InProcessLedger]:
    cat = cheapest_first("a")
    executor = Executor({"openai": ScriptedProvider(script)}, cat.secret_for, Timeouts(1, 1, 1))
    ledger = InProcessLedger()
    return ChatService(Planner(cat), executor, ledger), ledger


async def events(ledger: InProcessLedger) -> list:
    return [entry.event for entry in await ledger.read(100, 0)]


async def test_a_stream_read_to_the_end_is_one_ok_event() -> None:
    chat, ledger = service(Script())
    answer = await chat.stream(decode_chat_request(BODY), Caller())
    chunks = [chunk async for chunk in answer.chunks]
    await answer.chunks.aclose()  # type: ignore[attr-defined]
    assert chunks[-1] == b"data: [DONE]\n\n"
    [event] = await events(ledger)
    assert event.status == "ok" and event.usage.completion_tokens == 5
    assert [a.outcome for a in event.attempts] == ["ok"]


async def test_a_stream_closed_before_its_relay_ran_is_one_cancelled_event() -> None:
    chat, ledger = service(Script())
    answer = await chat.stream(decode_chat_request(BODY), Caller())
    await answer.chunks.aclose()  # type: ignore[attr-defined]
    await answer.chunks.aclose()  # type: ignore[attr-defined]
    [event] = await events(ledger)
    assert event.status == "cancelled" and event.usage.prompt_tokens > 0
    assert [a.outcome for a in event.attempts] == ["cancelled"]
    # Charged at the endpoint that opened the stream, and the event says which (reports).
    assert (event.provider, event.endpoint_id) == ("a", event.attempts[0].endpoint_id)
    assert event.price_version


async def test_a_stream_left_after_the_first_chunk_is_one_cancelled_event() -> None:
    chat, ledger = service(Script())
    answer = await chat.stream(decode_chat_request(BODY), Caller())
    chunks = aiter(answer.chunks)
    await anext(chunks)
    await answer.chunks.aclose()  # type: ignore[attr-defined]
    [event] = await events(ledger)
    assert event.status == "cancelled" and event.usage.completion_tokens == 1  # "h"


async def test_a_stream_cut_mid_way_is_one_error_event_charged_for_its_output() -> None:
    chat, ledger = service(Script(a=["cut"]))
    answer = await chat.stream(decode_chat_request(BODY), Caller())
    chunks = [chunk async for chunk in answer.chunks]
    assert b'"finish_reason":"error"' in chunks[-2]  # one error event, then `[DONE]` (#20)
    assert chunks[-1] == b"data: [DONE]\n\n"
    [event] = await events(ledger)
    assert event.status == "error" and event.usage.completion_tokens == 1
    assert event.cost.total > 0
