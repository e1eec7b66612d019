"""Helpers for driving the gateway in front of a real llama-server (and a simulated provider).

Catalogs, a server started off the event loop, a slot held busy, polling with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support import polling
from tests.support.llama import LlamaServer, run_llama_server

MODEL = "openai/gpt-oss-20b"
LOCAL_ID = f"{MODEL}@local"
# Long enough to span several KV cache chunks (~374 tokens), short enough for one slot.
LONG_PROMPT = " ".join(["hello world the cache test token"] * 60)
LOCAL_PRICE = 'price = { prompt = "0.2", completion = "0.8", cache_read = "0.05" }'
SIM_PRICE = 'price = { prompt = "1.0", completion = "4.0" }'

# A Qwen3-like template: assistant turns keep their reasoning in <think> tags and a new answer
# opens inside one, so llama.cpp returns everything the model says as `reasoning_content`.
# The effort given in chat_template_kwargs is written into the prompt (it changes its length).
THINKING_TEMPLATE = """\
{%- if reasoning_effort is defined -%}
{{- '<|im_start|>system\\nReasoning: ' + reasoning_effort + '<|im_end|>\\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'assistant' and message.get('reasoning_content') -%}
{{- '<|im_start|>assistant\\n<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n'
    + (message['content'] or '') + '<|im_end|>\\n' -}}
{%- else -%}
{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}
"""

# gpt-oss's harmony markers make llama.cpp parse the answer as harmony; the random model never
# writes harmony, so every answer fails with the parser's 500 ("does not match the expected
# ... format"), the failure gpt-oss itself sometimes produces.
HARMONY_TEMPLATE = """\
{%- for message in messages -%}
{{- '<|start|>' + message['role'] + '<|message|>' + (message['content'] or '') + '<|end|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start|>assistant<|channel|>' -}}{%- endif -%}
"""


def write_local_catalog(
    path: Path,
    local_url: str,
    sim_url: str | None = None,
    *,
    local_extra: str = "",
    context_length: int = 2048,
) -> Path:
    """`local` (kind llamacpp, cheapest, with a cache-read price) and optionally `sim`."""
    text = f"""
[models."{MODEL}"]
name = "gpt-oss-20b"
context_length = 131072

[[endpoints]]
model = "{MODEL}"
provider = "local"
kind = "llamacpp"
base_url = "{local_url}"
upstream_model = "gpt-oss-20b"
context_length = {context_length}
quantization = "mxfp4"
supported_parameters = ["reasoning", "max_tokens", "temperature"]
{LOCAL_PRICE}
{local_extra}
"""
    if sim_url is not None:
        text += f"""
[[endpoints]]
model = "{MODEL}"
provider = "sim"
kind = "openai"
base_url = "{sim_url}"
upstream_model = "gpt-oss-20b"
context_length = 131072
quantization = "mxfp4"
supported_parameters = ["reasoning", "max_tokens", "temperature"]
{SIM_PRICE}
"""
    path.write_text(text)
    return path


@asynccontextmanager
async def llama_server(model: Path, **options: Any) -> AsyncIterator[LlamaServer]:
    """`run_llama_server` with its blocking start and stop kept off the event loop."""
    manager = run_llama_server(model, **options)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@asynccontextmanager
async def busy_slot(server: LlamaServer, tokens: int = 8000) -> AsyncIterator[None]:
    """Hold one slot with a long streamed generation sent straight to llama-server.

    Not through the gateway: it stands for another replica or client, so only the load
    monitor can know the slot is taken.
    """
    started = asyncio.Event()
    body = {
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
    }

    async def hold() -> None:
        async with (
            httpx.AsyncClient(timeout=300) as client,
            client.stream("POST", f"{server.base_url}/v1/chat/completions", json=body) as resp,
        ):
            async for _ in resp.aiter_lines():
                started.set()

    task = asyncio.create_task(hold())
    try:
        await eventually(lambda: started.is_set() or task.done(), timeout_s=30)
        if task.done():
            task.result()
            raise AssertionError("the holding request ended before it started")
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


eventually = functools.partial(polling.eventually, timeout_s=15.0, interval_s=0.02)


async def generation_record(base_url: str, generation_id: str) -> dict[str, Any]:
    """The ledger's record of a generation, once the writer has committed it."""
    found: dict[str, Any] = {}

    async def committed() -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            resp = await client.get(f"{base_url}/api/v1/generation", params={"id": generation_id})
        if resp.status_code == 200:
            found.update(resp.json()["data"])
            return True
        return False

    await eventually(committed)
    return found
