"""What one request to a simulated provider experiences: its outcome, timing and token counts.

Pure functions of a profile and a seeded random source; nothing here touches the network.
"""

from __future__ import annotations

import random
from functools import lru_cache

import msgspec

from providers.simulator.profile import Failures, Profile
from providers.simulator.tokens import filler, thoughts

OK = "ok"


class Draw(msgspec.Struct, frozen=True):
    """The random part of a request: outcome, time to first token, completion length wanted."""

    outcome: str  # "ok" or a failure kind of `Failures`
    ttft_s: float
    wanted_tokens: int


def draw(profile: Profile, rng: random.Random) -> Draw:
    """Always three draws per request, so a seed replays the same sequence of requests."""
    roll, ttft_roll, length_roll = rng.random(), rng.random(), rng.random()
    outcome = OK
    for kind, threshold in _thresholds(profile.failures):
        if roll < threshold:
            outcome = kind
            break
    ttft_ms = profile.ttft_ms + (2 * ttft_roll - 1) * profile.ttft_jitter_ms
    jitter = profile.completion_jitter_tokens
    wanted = profile.completion_tokens + round((2 * length_roll - 1) * jitter)
    return Draw(outcome=outcome, ttft_s=max(ttft_ms, 0.0) / 1000, wanted_tokens=max(wanted, 0))


@lru_cache(maxsize=64)
def _thresholds(failures: Failures) -> tuple[tuple[str, float], ...]:
    """Cumulative rates of the failure kinds that can happen, in draw order."""
    thresholds: list[tuple[str, float]] = []
    total = 0.0
    for kind, rate in failures.rates().items():
        total += rate
        if rate > 0:
            thresholds.append((kind, total))
    return tuple(thresholds)


class Reply(msgspec.Struct, frozen=True):
    """Everything needed to answer one request that reaches the (simulated) model."""

    outcome: str
    ttft_s: float
    token_interval_s: float  # seconds per output token; 0 when unpaced
    prompt_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    content_tokens: int
    finish_reason: str  # "stop" or "length"

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + self.content_tokens

    @property
    def content(self) -> str:
        return filler(self.content_tokens)

    @property
    def reasoning(self) -> str:
        return thoughts(self.reasoning_tokens)

    @property
    def duration_s(self) -> float:
        """Time from request to last token."""
        return self.ttft_s + self.completion_tokens * self.token_interval_s


def plan(
    profile: Profile,
    drawn: Draw,
    *,
    prompt_tokens: int,
    cached_tokens: int,
    budget: int | None,
) -> Reply:
    """Apply the client's token budget (`max_tokens`, reasoning included) to what was drawn."""
    reasoning = profile.reasoning_tokens
    wanted = 0 if drawn.outcome == "empty" else drawn.wanted_tokens
    finish = "stop"
    if budget is not None and reasoning + wanted > budget:
        finish = "length"
        reasoning = min(reasoning, budget)
        wanted = budget - reasoning
    return Reply(
        outcome=drawn.outcome,
        ttft_s=drawn.ttft_s,
        token_interval_s=1 / profile.tokens_per_s if profile.tokens_per_s > 0 else 0.0,
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        reasoning_tokens=reasoning,
        content_tokens=wanted,
        finish_reason=finish,
    )
