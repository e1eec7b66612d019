"""The soak's traffic: a steady rate of chat requests spread over the replicas (a share of them
streamed, prompts from a fixed set of conversations), and random outages of one provider at a
time through the simulator's control API, on top of the failure rates of its profiles."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

MODEL = "openai/gpt-oss-20b"
CONVERSATIONS = 50  # distinct prompts: steady state, not an ever-growing affinity table
STREAM_SHARE = 0.3
MAX_IN_FLIGHT = 128  # beyond it a tick is skipped (and counted), the rate is not queued
REQUEST_TIMEOUT_S = 60.0
OUTAGE_EVERY_S = 45.0  # mean time between provider outages
OUTAGE_S = 10.0


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    answered: list[str] = field(default_factory=list)  # generation ids of 200 answers


def _body(conversation: int, stream: bool) -> bytes:
    messages = [
        {"role": "system", "content": f"You are assistant number {conversation}."},
        {"role": "user", "content": f"Conversation {conversation}: say something short."},
    ]
    body = {"model": MODEL, "messages": messages, "max_tokens": 64, "stream": stream}
    return json.dumps(body).encode()


async def _one(
    client: httpx.AsyncClient, url: str, body: bytes, stream: bool, tally: Tally
) -> None:
    try:
        if not stream:
            answer = await client.post(url, content=body)
            tally.outcomes[str(answer.status_code)] += 1
            if answer.status_code == 200:
                tally.answered.append(answer.json()["id"])
            return
        async with client.stream("POST", url, content=body) as answer:
            generation = None
            async for line in answer.aiter_lines():
                if generation is None and line.startswith("data: {"):
                    generation = json.loads(line[6:]).get("id")
            tally.outcomes[f"{answer.status_code} stream"] += 1
            if answer.status_code == 200 and generation:
                tally.answered.append(generation)
    except httpx.HTTPError as exc:
        tally.outcomes[type(exc).__name__] += 1


async def steady_load(
    urls: Sequence[str], headers: dict[str, str], rate: float, stop: asyncio.Event, seed: int
) -> Tally:
    """`rate` requests a second, round robin over `urls`, until `stop`; waits for the last."""
    rng = random.Random(seed)
    tally = Tally()
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()
    headers = {**headers, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=32)
    async with httpx.AsyncClient(headers=headers, timeout=REQUEST_TIMEOUT_S, limits=limits) as c:
        next_at = loop.time()
        while not stop.is_set():
            if len(running) >= MAX_IN_FLIGHT:
                tally.skipped += 1
            else:
                stream = rng.random() < STREAM_SHARE
                body = _body(rng.randrange(CONVERSATIONS), stream)
                url = urls[tally.sent % len(urls)]
                task = asyncio.create_task(_one(c, url, body, stream, tally))
                running.add(task)
                task.add_done_callback(running.discard)
                tally.sent += 1
            next_at += 1 / rate
            await asyncio.sleep(max(next_at - loop.time(), 0))  # pacing the rate
        await asyncio.gather(*running)
    return tally


async def random_outages(
    control_url: str, providers: Sequence[str], stop: asyncio.Event, seed: int
) -> int:
    """Take one provider down for `OUTAGE_S` now and then; returns how many outages ran."""
    rng = random.Random(seed + 1)
    outages = 0
    async with httpx.AsyncClient(base_url=control_url, timeout=10) as client:
        while not stop.is_set():
            with_pause = rng.expovariate(1 / OUTAGE_EVERY_S)
            try:
                await asyncio.wait_for(stop.wait(), timeout=with_pause)
                break
            except TimeoutError:
                pass
            name = rng.choice(list(providers))
            await client.patch(f"/_control/providers/{name}", json={"down": True})
            outages += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=OUTAGE_S)
            except TimeoutError:
                pass
            await client.patch(f"/_control/providers/{name}", json={"down": False})
    return outages


async def upstream_outcomes(control_url: str) -> dict[str, int]:
    """What the simulated providers did, summed over them: `ok` and each failure kind."""
    async with httpx.AsyncClient(base_url=control_url, timeout=10) as client:
        stats = (await client.get("/_control/stats")).json()["providers"]
    totals: Counter[str] = Counter()
    for provider in stats.values():
        totals.update(provider["outcomes"])
    return dict(totals)
