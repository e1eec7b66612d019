"""Generation events for the ledger's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gateway.ledger.events import GenerationEvent
from providers.pricing import Cost
from providers.usage import Usage
from routing.executor import Attempt

NOW = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)


def make_event(n: int = 0, **fields: Any) -> GenerationEvent:
    values: dict[str, Any] = {
        "id": f"gen-1741964966-{n:08x}",
        "created_at": NOW,
        "requested_model": "openai/gpt-oss-20b:nitro",
        "model": "openai/gpt-oss-20b",
        "mode": "nitro",
        "streamed": True,
        "provider": "groq",
        "endpoint_id": "openai/gpt-oss-20b@groq",
        "usage": Usage(
            prompt_tokens=2000, completion_tokens=300, cached_tokens=1024, reasoning_tokens=40
        ),
        "cost": Cost(
            prompt=Decimal("0.0000744"),
            completion=Decimal("0.00009"),
            request=Decimal(0),
            cache_discount=Decimal("0.0000384"),
        ),
        "latency_s": 0.5,
        "ttft_s": 0.1,
        "generation_s": 0.4,
        "finish_reason": "stop",
        "native_finish_reason": "stop",
        "attempts": [
            Attempt(
                "openai/gpt-oss-20b@together",
                "together",
                NOW,
                0.05,
                None,
                "http",
                500,
                "UpstreamServerError",
                "boom",
            ),
            Attempt("openai/gpt-oss-20b@groq", "groq", NOW, 0.45, 0.1),
        ],
        "explanation": {"scores": {"groq": Decimal("0.5")}},
    }
    values.update(fields)
    return GenerationEvent(**values)
