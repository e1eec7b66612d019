"""`gateway demo`: a simulated fleet, a gateway in front of it, a burst per routing mode, a table.

Runs offline with no API key: every provider of the shipped catalog is simulated on loopback.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec

from gateway.app import create_app
from gateway.embedded import serve_in_loop
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    RoutingSettings,
    ServerSettings,
    Settings,
)
from gateway.simulated import simulated_catalog
from providers.simulator.profile import default_fleet
from providers.simulator.server import start_fleet

MODEL = "openai/gpt-oss-20b"
MODES = ("balanced", "nitro", "floor", "exacto")
PROMPT = [{"role": "user", "content": "Explain in two sentences why routing matters."}]


@dataclass
class ModeResult:
    mode: str
    providers: Counter[str] = field(default_factory=Counter)
    ttft_ms: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    errors: int = 0


async def _one(client: httpx.AsyncClient, url: str, mode: str, result: ModeResult) -> None:
    body = {"model": f"{MODEL}:{mode}", "messages": PROMPT, "stream": True, "max_tokens": 96}
    started = time.monotonic()
    first: float | None = None
    provider, usage = None, None
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
        if resp.status_code != 200:
            result.errors += 1
            await resp.aread()
            return
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = msgspec.json.decode(line[6:])
            if "error" in chunk:
                result.errors += 1
                return
            provider = chunk.get("provider") or provider
            if first is None and chunk.get("choices"):
                first = time.monotonic()
            usage = chunk.get("usage") or usage
    end = time.monotonic()
    if provider is None or usage is None or first is None:
        result.errors += 1
        return
    result.providers[provider] += 1
    result.ttft_ms.append((first - started) * 1000)
    if end > first:
        result.tokens_per_s.append(usage["completion_tokens"] / (end - first))
    result.cost += Decimal(str(usage["cost"]))


def _table(results: list[ModeResult], requests: int) -> str:
    rows = [("mode", "provider chosen", "TTFT p50 ms", "tokens/s p50", "cost USD", "errors")]
    for r in results:
        chosen = ", ".join(f"{p} x{n}" for p, n in r.providers.most_common())
        rows.append(
            (
                r.mode,
                chosen or "-",
                f"{statistics.median(r.ttft_ms):.0f}" if r.ttft_ms else "-",
                f"{statistics.median(r.tokens_per_s):.0f}" if r.tokens_per_s else "-",
                f"{r.cost.normalize():f}",
                f"{r.errors}/{requests}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for i, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def run_demo(requests: int) -> str:
    fleet = await start_fleet(default_fleet())
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
            catalog = simulated_catalog(fleet, Path(tmp) / "catalog.toml")
            port = _free_port()
            settings = Settings(
                server=ServerSettings(host="127.0.0.1", port=port, auth="off"),
                catalog=CatalogSettings(catalog=catalog),
                database=DatabaseSettings(database_url=f"sqlite+aiosqlite:///{tmp}/demo.sqlite3"),
                routing=RoutingSettings(first_token_timeout_s=5.0, total_timeout_s=30.0),
            )
            results = []
            async with (
                serve_in_loop(create_app(settings), "127.0.0.1", port) as url,
                httpx.AsyncClient(timeout=60) as client,
            ):
                for mode in MODES:
                    result = ModeResult(mode)
                    await asyncio.gather(
                        *(_one(client, url, mode, result) for _ in range(requests))
                    )
                    results.append(result)
            return _table(results, requests)
    finally:
        await fleet.close()


def main(requests: int = 8) -> int:
    sys.stdout.write(
        f"gateway demo: {requests} streamed requests per mode against a simulated "
        f"fleet of the shipped {MODEL} catalog (loopback only, no API keys)\n\n"
    )
    table = asyncio.run(run_demo(requests))
    sys.stdout.write(table + "\n")
    return 0
