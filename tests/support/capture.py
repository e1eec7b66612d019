"""A one-route OpenAI-compatible upstream that records the bodies it receives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class CaptureUpstream:
    url: str  # base URL ending in /v1
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@asynccontextmanager
async def capture_upstream() -> AsyncIterator[CaptureUpstream]:
    capture = CaptureUpstream(url="")

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        capture.bodies.append(body)
        capture.headers.append(dict(request.headers))
        return web.json_response(
            {
                "id": "up-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "captured"},
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    capture.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield capture
    finally:
        await runner.cleanup()
