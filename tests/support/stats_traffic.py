"""Simulated traffic for the ops board's tests: several modes, streamed and not, some failures,
two apps; and the ledger's own figures (raw SQL) to hold the stats API against."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from providers.simulator.profile import Failures, Profile

MODEL = "openai/gpt-oss-20b"
PROFILES = {
    "alpha": Profile(completion_tokens=12, cache_min_tokens=64, cache_block_tokens=16),
    "beta": Profile(completion_tokens=8, seed=7, failures=Failures(http_500=0.4)),
    "gamma": Profile(down=True),
}
EXACTO = "beta"  # exacto never falls back: its failures are failed generations
MODES = ("", ":nitro", ":floor", ":exacto")
APPS = ("ops-board-test", "billing-bot")
PROMPT = "Tell me about routing. " * 40  # long enough for alpha's prompt cache


@dataclass
class Sent:
    statuses: Counter[int]
    generation_ids: list[str]

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


async def send_traffic(
    client: httpx.AsyncClient, n: int, headers: dict[str, str] | None = None
) -> Sent:
    """`n` requests cycling through the modes, every other one streamed, two apps."""
    sent = Sent(Counter(), [])
    for i in range(n):
        body: dict[str, Any] = {
            "model": MODEL + MODES[i % len(MODES)],
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": i % 2 == 1,
        }
        if body["stream"]:
            body["stream_options"] = {"include_usage": True}
        request_headers = {"X-Title": APPS[i % len(APPS)], **(headers or {})}
        if i % len(MODES) == 1:  # nitro tries the down provider first, then falls back
            body["provider"] = {"order": ["gamma", "alpha"]}
            request_headers["X-Route-Explain"] = "1"  # the ledger keeps the explanation
        response = await client.post("/v1/chat/completions", json=body, headers=request_headers)
        await response.aread()
        sent.statuses[response.status_code] += 1
        generation_id = response.headers.get("x-generation-id")
        if generation_id:
            sent.generation_ids.append(generation_id)
    return sent


async def ledger_by_provider(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """Per provider, summed in Python from every generations row (exact on SQLite too): what
    the rollups must agree with."""
    query = text(
        "SELECT coalesce(provider, '') AS provider, prompt_tokens, completion_tokens,"
        " cached_tokens, prompt_cost, completion_cost, cost FROM generations"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        found = totals.setdefault(
            row["provider"],
            {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
            | {k: Decimal(0) for k in ("prompt_cost", "completion_cost", "cost")},
        )
        found["requests"] += 1
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            found[name] += row[name]
        for name in ("prompt_cost", "completion_cost", "cost"):
            found[name] += Decimal(str(row[name]))
    return totals


async def ledger_errors(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    """Failed attempts per (provider, error class), from the attempts table."""
    query = text(
        "SELECT provider, coalesce(error_class, outcome) AS cls, count(*) AS n FROM attempts"
        " WHERE outcome NOT IN ('ok', 'cancelled') GROUP BY 1, 2"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return {(row["provider"], row["cls"]): row["n"] for row in rows}


def per_token(cost: Decimal, tokens: int) -> str | None:
    """The stats API's effective price string for these sums."""
    if not tokens:
        return None
    text = format((cost / tokens).quantize(Decimal(1).scaleb(-18)), "f").rstrip("0").rstrip(".")
    return text or "0"
