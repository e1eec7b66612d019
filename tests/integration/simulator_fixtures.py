"""Helpers for driving the provider simulator over real HTTP on loopback in tests."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from providers.simulator import Fleet, Profile, start_fleet
from tests.support import polling

USER_PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-oss-20b", "messages": USER_PROMPT, **extra}


def long_messages(tokens: int, suffix: str = "") -> list[dict[str, str]]:
    """A system prompt of about `tokens` tokens (4 chars each) plus a user turn."""
    system = ("The quick brown fox jumps over the lazy dog. " * (tokens // 11 + 1))[: tokens * 4]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Question {suffix}"},
    ]


@asynccontextmanager
async def running_fleet(**profiles: Profile) -> AsyncIterator[tuple[Fleet, httpx.AsyncClient]]:
    """A fleet on a free port plus an HTTP client for it; both closed afterwards."""
    fleet = await start_fleet(profiles or {"acme": Profile()})
    try:
        async with httpx.AsyncClient(base_url=fleet.base_url, timeout=10.0) as client:
            yield fleet, client
    finally:
        await fleet.close()


async def post_chat(client: httpx.AsyncClient, provider: str, **body: Any) -> httpx.Response:
    return await client.post(f"/{provider}/v1/chat/completions", json=chat_body(**body))


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]


def stream_json(text: str) -> list[dict[str, Any]]:
    return [json.loads(event) for event in sse_events(text) if event != "[DONE]"]


eventually = functools.partial(polling.eventually, timeout_s=5.0)
