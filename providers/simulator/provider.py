"""One simulated provider: its live profile, seeded randomness, prompt cache, stats and answers.

Turns a chat-completions request into the behaviour its profile draws; HTTP framing is
`providers.simulator.protocol`, path routing is `providers.simulator.routes`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Coroutine, Mapping
from typing import Any

import msgspec

from providers.simulator import wire
from providers.simulator.cache import PromptCache
from providers.simulator.outcome import Reply, draw, plan
from providers.simulator.profile import Profile, apply_changes
from providers.simulator.protocol import Exchange, Request
from providers.simulator.stats import ProviderStats
from providers.simulator.tokens import count_tokens, deltas

logger = logging.getLogger(__name__)

Work = Coroutine[Any, Any, None] | None

_HTTP_FAILURES: dict[str, tuple[int, str, str | None]] = {
    "http_500": (500, "internal server error (simulated)", None),
    "http_502": (502, "bad gateway (simulated)", None),
    "http_503": (503, "service overloaded (simulated)", "overloaded"),
    "http_429": (429, "rate limit reached (simulated)", "rate_limit_exceeded"),
}
_NOT_JSON = b"<html><body><h1>502 Bad Gateway</h1>upstream sent garbage</body></html>"
_MIN_SLEEP_S = 0.0005  # below this, pacing a chunk is not worth a timer


class SimulatedProvider:
    """Answers `/NAME/v1/...` requests the way the current profile says."""

    def __init__(self, name: str, profile: Profile) -> None:
        self.name = name
        self.profile = profile
        self.stats = ProviderStats()
        self._cache = PromptCache()
        self._rng = random.Random(f"{name}:{profile.seed}")
        self._ids = itertools.count(1)

    def update(self, changes: Mapping[str, Any]) -> Profile:
        """Apply a partial profile now; raise `ProfileError` (and change nothing) if invalid."""
        updated = apply_changes(self.profile, changes)
        if updated.seed != self.profile.seed:
            self._rng.seed(f"{self.name}:{updated.seed}")
        self.profile = updated
        logger.info(
            "simulated provider profile changed",
            extra={"provider": self.name, "fields": sorted(changes)},
        )
        return updated

    def reset(self) -> None:
        """Zero the stats, forget the prompt cache and replay the seed from its start."""
        self.stats = ProviderStats()
        self._cache.clear()
        self._rng.seed(f"{self.name}:{self.profile.seed}")
        self._ids = itertools.count(1)

    def models(self, request: Request, exchange: Exchange) -> None:
        if self._refused(request, exchange, count=False):
            return
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": self.name}
            for model in self.profile.models
        ]
        exchange.respond(200, wire.json_body({"object": "list", "data": data}))

    def chat(self, request: Request, exchange: Exchange) -> Work:
        """Answer one chat completion: refuse, fail as drawn, or generate."""
        self.stats.requests += 1
        admitted = self._admit(request, exchange)
        if admitted is None:
            return None
        chat, text, prompt_tokens = admitted
        profile = self.profile
        if chat.stream:
            self.stats.streamed += 1
        drawn = draw(profile, self._rng)
        self.stats.count(drawn.outcome)
        if drawn.outcome in _HTTP_FAILURES:
            self._http_failure(exchange, drawn.outcome)
            return None
        if drawn.outcome == "reset":
            exchange.reset()
            return None
        if drawn.outcome == "hang":
            exchange.hang(profile.hang_max_s)
            return None
        cached = self._cache.serve(
            chat.model,
            text,
            ttl_s=profile.cache_ttl_s,
            min_tokens=profile.cache_min_tokens,
            block_tokens=profile.cache_block_tokens,
        )
        budget = chat.token_budget(profile.cap_alias)
        planned = plan(
            profile, drawn, prompt_tokens=prompt_tokens, cached_tokens=cached, budget=budget
        )
        rendering = wire.Rendering(
            f"chatcmpl-{self.name}-{next(self._ids)}",
            int(time.time()),
            chat.model,
            planned,
            llamacpp_timings=profile.llamacpp_timings,
        )
        if chat.stream:
            return self._stream(exchange, planned, rendering)
        return self._complete(exchange, planned, rendering)

    # refusals and failures

    def _admit(
        self, request: Request, exchange: Exchange
    ) -> tuple[wire.WireRequest, str, int] | None:
        """The request, its prompt text and tokens; or None once refused as a provider would."""
        profile = self.profile
        if self._refused(request, exchange, count=True):
            return None
        try:
            chat = wire.decode_chat_request(request.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._error(exchange, "bad_request", 400, f"invalid request body: {exc}")
            return None
        if profile.strict_models and chat.model not in profile.models:
            message = f"the model `{chat.model}` does not exist (simulated provider {self.name})"
            self._error(exchange, "model_not_found", 404, message, code="model_not_found")
            return None
        text = chat.prompt_text()
        prompt_tokens = count_tokens(text)
        if prompt_tokens > profile.context_length:
            message = (
                f"prompt is {prompt_tokens} tokens; this endpoint's maximum context length "
                f"is {profile.context_length} tokens"
            )
            code = "context_length_exceeded"
            self._error(exchange, code, 400, message, code=code)
            return None
        return chat, text, prompt_tokens

    def _refused(self, request: Request, exchange: Exchange, *, count: bool) -> bool:
        profile = self.profile
        if profile.down:
            self._error(exchange, "down" if count else None, 503, f"{self.name} is down")
            return True
        if profile.api_key is not None:
            if request.header("authorization") != f"Bearer {profile.api_key}":
                message = "invalid or missing API key (simulated)"
                outcome = "unauthorized" if count else None
                self._error(exchange, outcome, 401, message, code="invalid_api_key")
                return True
        return False

    def _error(
        self,
        exchange: Exchange,
        outcome: str | None,
        status: int,
        message: str,
        *,
        code: str | None = None,
    ) -> None:
        if outcome is not None:
            self.stats.count(outcome)
        wire.send_error(exchange, status, message, code=code)

    def _http_failure(self, exchange: Exchange, kind: str) -> None:
        status, message, code = _HTTP_FAILURES[kind]
        headers = [("retry-after", str(self.profile.retry_after_s))] if status == 429 else []
        wire.send_error(exchange, status, message, code=code, headers=headers)

    # answers

    def _complete(self, exchange: Exchange, planned: Reply, rendering: wire.Rendering) -> Work:
        if planned.duration_s > 0:
            return self._complete_later(exchange, planned, rendering)
        self._send_completion(exchange, planned, rendering)
        return None

    async def _complete_later(
        self, exchange: Exchange, planned: Reply, rendering: wire.Rendering
    ) -> None:
        await asyncio.sleep(planned.duration_s)
        self._send_completion(exchange, planned, rendering)

    def _send_completion(
        self, exchange: Exchange, planned: Reply, rendering: wire.Rendering
    ) -> None:
        if planned.outcome == "invalid_json":
            exchange.respond(200, _NOT_JSON)
            return
        body = rendering.completion()
        if planned.outcome == "stream_cut":
            exchange.respond(200, body, truncate_at=len(body) // 2)
            return
        exchange.respond(200, body)
        self.stats.served(planned)

    def _stream(self, exchange: Exchange, planned: Reply, rendering: wire.Rendering) -> Work:
        events = self._events(planned, rendering)
        if planned.duration_s > 0:
            return self._stream_paced(exchange, planned, events)
        exchange.start_stream()
        exchange.send(b"".join(event for _, event in events))
        self._end_stream(exchange, planned)
        return None

    async def _stream_paced(
        self, exchange: Exchange, planned: Reply, events: list[tuple[float, bytes]]
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        exchange.start_stream()
        pending: list[bytes] = []
        for due, event in events:
            wait = start + due - loop.time()
            if wait > _MIN_SLEEP_S:
                exchange.send(b"".join(pending))
                pending.clear()
                await exchange.drain()
                await asyncio.sleep(wait)
                if exchange.closed:
                    return
            pending.append(event)
        exchange.send(b"".join(pending))
        self._end_stream(exchange, planned)

    def _end_stream(self, exchange: Exchange, planned: Reply) -> None:
        if planned.outcome == "stream_cut":
            exchange.cut()
        else:
            exchange.end_stream()
            if planned.outcome != "invalid_json":
                self.stats.served(planned)

    def _events(self, planned: Reply, rendering: wire.Rendering) -> list[tuple[float, bytes]]:
        """Every SSE event of the answer with its due time (seconds after the request)."""
        ttft, interval = planned.ttft_s, planned.token_interval_s
        per_chunk = self.profile.stream_chunk_tokens
        events = [(ttft, rendering.chunk({"role": "assistant", "content": ""}))]
        if planned.outcome == "invalid_json":
            events.append((ttft, b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n'))
            events.append((ttft, wire.DONE_EVENT))
            return events
        tokens = 0
        segments = (
            ("reasoning", planned.reasoning_tokens, planned.reasoning),
            ("content", planned.content_tokens, planned.content),
        )
        continuous = self.profile.stream_usage == "continuous"
        for field, count, text in segments:
            for index, delta in enumerate(deltas(text, per_chunk)):
                tokens += min(per_chunk, count - index * per_chunk)
                running = rendering.running_usage(tokens) if continuous else None
                events.append(
                    (ttft + tokens * interval, rendering.chunk({field: delta}, None, running))
                )
        done = ttft + planned.completion_tokens * interval
        events.append((done, rendering.chunk({}, planned.finish_reason)))
        if self.profile.stream_usage != "none":
            events.append((done, rendering.usage_chunk()))
        events.append((done, wire.DONE_EVENT))
        if planned.outcome == "stream_cut":
            return events[: self.profile.stream_cut_after]
        return events
