"""A real llama.cpp llama-server serving the tiny random model answers as the adapter expects.

Pins the upstream shapes the `local` provider relies on; it does not go through the gateway.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.llama import LlamaServer, ensure_llama_server, run_llama_server
from tests.support.tiny_gguf import write_tiny_gguf

CTX = 2048
SLOTS = 2
# Long enough to span several KV cache chunks, short enough to fit one slot (CTX // SLOTS).
LONG_PROMPT = " ".join(["hello world the cache test token"] * 60)

# The first run builds llama-server (several minutes on 2 cores) inside the fixture's setup.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    ensure_llama_server()
    model = write_tiny_gguf(tmp_path_factory.mktemp("tiny-model") / "tiny.gguf")
    with run_llama_server(model, slots=SLOTS, ctx=CTX) as server:
        yield server


@pytest.fixture
def client(llama_server: LlamaServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=llama_server.base_url, timeout=60.0) as client:
        yield client


def chat(client: httpx.Client, content: str, **extra: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def sse_events(client: httpx.Client, body: dict[str, Any]) -> list[str]:
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [
            line[len("data:") :].strip()
            for line in response.iter_lines()
            if line.startswith("data:")
        ]


def test_health_answers_ok(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_props_reports_context_per_slot(client: httpx.Client) -> None:
    props = client.get("/props").json()
    assert props["total_slots"] == SLOTS
    assert props["default_generation_settings"]["n_ctx"] == CTX // SLOTS
    assert "<|im_start|>" in props["chat_template"]


def test_non_streamed_chat_has_choice_usage_and_timings(client: httpx.Client) -> None:
    result = chat(client, "hello")
    assert result["object"] == "chat.completion"
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in {"stop", "length"}
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "cached_tokens" in usage["prompt_tokens_details"]
    timings = result["timings"]
    for field in ("cache_n", "prompt_n", "prompt_ms", "predicted_n", "predicted_per_second"):
        assert field in timings, field
    assert timings["predicted_n"] == usage["completion_tokens"]


def test_streamed_chat_ends_with_usage_timings_and_done(client: httpx.Client) -> None:
    body = {
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = sse_events(client, body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    # This server version sends `role` on some streams only; when it does, it is the assistant.
    roles = [c["choices"][0]["delta"].get("role") for c in chunks if c["choices"]]
    assert set(roles) <= {"assistant", None}
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] is not None]
    assert len(finish) == 1
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] > 0
    assert "cached_tokens" in last["usage"]["prompt_tokens_details"]
    assert {"cache_n", "prompt_ms", "predicted_per_second"} <= last["timings"].keys()


def test_server_closes_the_connection_after_a_streamed_response(llama_server: LlamaServer) -> None:
    # cpp-httplib ends every chunked response by cancelling it, so keep-alive is lost: a pooled
    # client that reuses the connection can get "Server disconnected without sending a response".
    body = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    )
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    received = b""
    with socket.create_connection(("127.0.0.1", llama_server.port), timeout=30) as sock:
        sock.sendall(head.encode() + body.encode())
        while chunk := sock.recv(65536):
            received += chunk
    assert received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")


def test_repeated_prompt_reuses_cached_tokens(client: httpx.Client) -> None:
    first = chat(client, LONG_PROMPT, temperature=0)
    second = chat(client, LONG_PROMPT, temperature=0)
    prompt_tokens = first["usage"]["prompt_tokens"]
    assert prompt_tokens > 256
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0
    assert second["timings"]["cache_n"] == cached
    assert second["timings"]["prompt_n"] + cached == second["usage"]["prompt_tokens"]


def test_slots_and_metrics_answer(client: httpx.Client) -> None:
    slots = client.get("/slots").json()
    assert len(slots) == SLOTS
    assert {"id", "n_ctx", "is_processing"} <= slots[0].keys()
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "llamacpp:requests_processing" in metrics.text
    assert "llamacpp:prompt_tokens_total" in metrics.text
