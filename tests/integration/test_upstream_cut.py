"""Nothing billed twice: an answer the upstream had started is never sent to it again.

Scripted upstreams on loopback behind a real gateway: a body cut after the status line goes to
that endpoint once and then falls back; a non-streamed generation slower than the first-token
limit is waited for (under the total limit) instead of being timed out and sent again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from tests.e2e.conftest import embedded_settings
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually
from tests.support.scripted_http import Request, ScriptedServer, chunk, scripted_server

Writer = asyncio.StreamWriter
PATH = "/v1/chat/completions"
BODY = {
    "model": "openai/gpt-oss-20b",
    "messages": [{"role": "user", "content": "hi"}],
    "provider": {"sort": "price"},  # the cheapest (the first in the catalog) is tried first
}
ANSWER = json.dumps(
    {
        "id": "up-1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()


def answer_with(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def good(server: ScriptedServer, delay_s: float = 0.0) -> None:
    @server.route(PATH)
    async def answer(request: Request, writer: Writer) -> bool:
        if json.loads(request.body).get("stream"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
            delta = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
            usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
            for event in (delta, usage):
                writer.write(chunk(b"data: " + json.dumps(event).encode() + b"\n\n"))
            writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            return True
        if delay_s:
            await asyncio.sleep(delay_s)  # the upstream generating before its headers
        writer.write(answer_with(ANSWER))
        return True


def cut_after_status(server: ScriptedServer) -> None:
    @server.route(PATH)
    async def cut(request: Request, writer: Writer) -> bool:
        if json.loads(request.body).get("stream"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + ANSWER[:20])
        await writer.drain()
        return False  # hang up mid-body


async def test_a_body_cut_after_the_status_line_goes_once_to_that_endpoint(
    tmp_path: Path,
) -> None:
    async with scripted_server() as cutting, scripted_server() as serving:
        cut_after_status(cutting)
        good(serving)
        catalog = write_catalog(
            tmp_path / "c.toml", {"cutting": cutting.url("/v1"), "serving": serving.url("/v1")}
        )
        async with (
            run_gateway(embedded_settings(tmp_path, catalog)) as gw,
            httpx.AsyncClient(timeout=30) as client,
        ):
            resp = await client.post(f"{gw.v1}/chat/completions", json=BODY)
            assert resp.status_code == 200, resp.text
            assert resp.json()["choices"][0]["message"]["content"] == "hi"
            assert resp.headers["x-route-attempts"] == "2"
            assert len(cutting.requests) == 1  # before: 2 (one retry of a generated answer)
            assert len(serving.requests) == 1
            generation_id = resp.headers["x-generation-id"]

            async def recorded() -> bool:
                found = await client.get(
                    f"{gw.url}/api/v1/generation", params={"id": generation_id}
                )
                return found.status_code == 200

            await eventually(recorded, 10, what="the generation in the ledger")
            found = await client.get(f"{gw.url}/api/v1/generation", params={"id": generation_id})
            lost, served = found.json()["data"]["provider_responses"]
            # the lost attempt says the upstream answered 200: it may bill it
            assert (lost["provider"], lost["status"], lost["outcome"]) == ("cutting", 200, "reset")
            assert (served["provider"], served["status"]) == ("serving", 200)

            streamed = {**BODY, "stream": True}
            async with client.stream("POST", f"{gw.v1}/chat/completions", json=streamed) as s:
                assert s.status_code == 200
                text = (await s.aread()).decode()
            assert '"content":"hi"' in text.replace(" ", "")
            assert len(cutting.requests) == 2  # once for this generation too
            assert len(serving.requests) == 2


async def test_when_every_endpoint_cuts_each_is_sent_the_request_once(tmp_path: Path) -> None:
    async with scripted_server() as first, scripted_server() as second:
        cut_after_status(first)
        cut_after_status(second)
        urls = {"a": first.url("/v1"), "b": second.url("/v1")}
        catalog = write_catalog(tmp_path / "c.toml", urls)
        async with (
            run_gateway(embedded_settings(tmp_path, catalog)) as gw,
            httpx.AsyncClient(timeout=30) as client,
        ):
            resp = await client.post(f"{gw.v1}/chat/completions", json=BODY)
    assert resp.status_code == 502
    assert "not sent to it again" in resp.json()["error"]["message"]
    assert (len(first.requests), len(second.requests)) == (1, 1)  # before: 2 and 2


async def test_a_non_streamed_generation_longer_than_first_token_is_waited_for(
    tmp_path: Path,
) -> None:
    async with scripted_server() as slow:
        good(slow, delay_s=0.8)
        catalog = write_catalog(tmp_path / "c.toml", {"slow": slow.url("/v1")})
        settings = embedded_settings(tmp_path, catalog)
        settings.routing.first_token_timeout_s = 0.3
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(timeout=30) as client,
        ):
            resp = await client.post(f"{gw.v1}/chat/completions", json=BODY)
    assert resp.status_code == 200, resp.text
    assert len(slow.requests) == 1
