"""Traffic counters of one simulated provider, as the control API and `Fleet.stats()` report them.

Counts what the simulator served; the gateway's own routing stats live in `routing/`.
"""

from __future__ import annotations

import msgspec

from providers.simulator.outcome import Reply


class ProviderStats(msgspec.Struct, kw_only=True):
    """Requests by outcome and tokens served since start (or the last reset).

    Outcomes: `ok`, each failure kind (`http_429`, `hang`, `stream_cut`, ...), and the
    refusals `down`, `unauthorized`, `bad_request`, `model_not_found`,
    `context_length_exceeded`. Tokens count answers that were sent whole (ok, empty).
    """

    requests: int = 0
    streamed: int = 0
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def served(self, plan: Reply) -> None:
        self.prompt_tokens += plan.prompt_tokens
        self.completion_tokens += plan.completion_tokens
        self.cached_tokens += plan.cached_tokens
        self.reasoning_tokens += plan.reasoning_tokens

    def snapshot(self) -> ProviderStats:
        return ProviderStats(
            requests=self.requests,
            streamed=self.streamed,
            outcomes=dict(self.outcomes),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )
