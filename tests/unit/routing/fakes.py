"""Builders and fakes for routing unit tests: catalogs, stats, scripted providers. No I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from providers.catalog import Catalog, parse_catalog
from providers.errors import UpstreamError, UpstreamReset
from providers.provider import Chunk, Completion, UpstreamCall
from providers.usage import Usage
from routing.stats import Counts, EndpointStats, Measured

MODEL = "openai/gpt-oss-20b"
OTHER = "openai/gpt-oss-120b"


def endpoint(provider: str, prompt: str = "0.1", completion: str = "0.5", **extra: Any) -> dict:
    return {
        "model": MODEL,
        "provider": provider,
        "base_url": f"http://sim.test/{provider}/v1",
        "upstream_model": "gpt-oss-20b",
        "context_length": 131072,
        "quantization": "mxfp4",
        "supported_parameters": ["max_tokens", "temperature"],
        "price": {"prompt": prompt, "completion": completion},
        **extra,
    }


def catalog(
    *endpoints: dict, exacto: str | None = None, env: dict[str, str] | None = None
) -> Catalog:
    models: dict[str, dict[str, Any]] = {MODEL: {"name": "small", "context_length": 131072}}
    if exacto:
        models[MODEL]["exacto"] = exacto
    if any(e["model"] == OTHER for e in endpoints):
        models[OTHER] = {"name": "big", "context_length": 131072}
    return parse_catalog({"models": models, "endpoints": list(endpoints)}, env or {})


def cheapest_first(*providers: str) -> Catalog:
    """Providers priced 1x, 2x, 3x ... in the order given."""
    return catalog(*(endpoint(p, f"0.{i + 1}", f"0.{i + 1}") for i, p in enumerate(providers)))


def stats(
    endpoint_id: str,
    *,
    ok: int = 50,
    errors: int = 0,
    recent_ok: int | None = None,
    recent_errors: int = 0,
    throughput: float | None = None,
    ttft_ms: float | None = None,
    samples: int | None = None,
    recovered: bool = False,
) -> EndpointStats:
    counts = Counts(ok, errors)
    tput = Measured(throughput, throughput, throughput, throughput) if throughput else None
    ttft = Measured(ttft_ms, ttft_ms, ttft_ms, ttft_ms) if ttft_ms else None
    return EndpointStats(
        endpoint_id,
        {"30s": counts, "30m": counts},
        Counts(ok if recent_ok is None else recent_ok, recent_errors),
        ttft_ms=ttft,
        latency_ms=ttft,
        throughput=tput,
        samples=ok if samples is None else samples,
        rolling=counts,
        recovered=recovered,
    )


class Script:
    """Per provider, the outcomes of its next calls: an UpstreamError to raise, "ok", or
    "cut" (streams: fail after the first chunk). Unscripted calls succeed."""

    def __init__(self, **outcomes: list[Any]) -> None:
        self.outcomes = {k: list(v) for k, v in outcomes.items()}
        self.calls: list[str] = []

    def next(self, provider: str) -> Any:
        self.calls.append(provider)
        queue = self.outcomes.get(provider)
        return queue.pop(0) if queue else "ok"


class ScriptedProvider:
    kind = "openai"

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[UpstreamCall] = []

    async def complete(self, call: UpstreamCall) -> Completion:
        self.calls.append(call)
        outcome = self.script.next(call.endpoint.provider)
        if isinstance(outcome, UpstreamError):
            raise outcome
        body = {"choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}]}
        return Completion(body, Usage(10, 5), 0.01, 0.02)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        self.calls.append(call)
        outcome = self.script.next(call.endpoint.provider)
        if isinstance(outcome, UpstreamError):
            raise outcome
        yield Chunk({"choices": [{"index": 0, "delta": {"content": "h"}}]})
        if outcome == "cut":
            raise UpstreamReset("cut")
        yield Chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield Chunk({"choices": []}, usage=Usage(10, 5))


class FakeSleep:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
