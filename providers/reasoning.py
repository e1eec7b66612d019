"""OpenRouter's `reasoning` request object for OpenAI-compatible hosts, and their reasoning output
mapped back to OpenRouter's `reasoning` field; the effort, `exclude` and reasoning-token estimate
are shared with the llama.cpp adapter (which translates to its own template kwargs). Pure.

Hosts take OpenAI's `reasoning_effort`; they return reasoning as `reasoning_content` (vLLM,
DeepInfra, ...) or `reasoning` (Groq, ...). `reasoning.max_tokens` (a budget) becomes an effort
by its share of the answer's `max_tokens` (>= 80 % high, >= 50 % medium, else low; without
`max_tokens`: >= 8192 high, >= 2048 medium, else low).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from providers.usage import Usage

EFFORTS = frozenset({"low", "medium", "high"})
# gpt-oss always reasons: the least it can be asked for is low.
EFFORT_ALIASES = {"none": "low", "minimal": "low", "xhigh": "high"}


@dataclasses.dataclass(frozen=True, slots=True)
class ReasoningRequest:
    """What the client asked of reasoning: the effort for gpt-oss and whether to show it."""

    effort: str | None = None  # None: the server's default (medium for gpt-oss)
    exclude: bool = False


def normalize_effort(value: Any) -> str | None:
    """An OpenRouter/OpenAI effort as gpt-oss understands it; None for what it doesn't."""
    if not isinstance(value, str):
        return None
    effort = value.strip().lower()
    effort = EFFORT_ALIASES.get(effort, effort)
    return effort if effort in EFFORTS else None


def reasoning_of(body: dict[str, Any]) -> ReasoningRequest:
    """Read `reasoning: {effort, enabled, exclude}`, `reasoning_effort` and `include_reasoning`."""
    effort: str | None = None
    exclude = False
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        effort = normalize_effort(reasoning.get("effort"))
        if effort is None and reasoning.get("enabled") is False:
            effort = "low"
        exclude = reasoning.get("exclude") is True
    if effort is None:
        effort = normalize_effort(body.get("reasoning_effort"))
    if body.get("include_reasoning") is False:
        exclude = True
    return ReasoningRequest(effort, exclude)


FIELDS = ("reasoning", "include_reasoning")  # OpenRouter's; the host gets `reasoning_effort`
HIGH_SHARE, MEDIUM_SHARE = 0.8, 0.5
HIGH_BUDGET, MEDIUM_BUDGET = 8192, 2048


def _positive_int(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


def effort_for_budget(budget: int, max_tokens: int | None) -> str:
    """An effort for a reasoning token budget (see the module docstring)."""
    if max_tokens:
        share = budget / max_tokens
        return "high" if share >= HIGH_SHARE else "medium" if share >= MEDIUM_SHARE else "low"
    return "high" if budget >= HIGH_BUDGET else "medium" if budget >= MEDIUM_BUDGET else "low"


def effort_of(body: dict[str, Any]) -> str | None:
    """The effort the client asked for: `reasoning.effort`, a budget, `enabled: false`
    (gpt-oss can't stop reasoning: low), else `reasoning_effort`; None leaves the default.
    A budget is a share of the body's own `max_completion_tokens` / `max_tokens`."""
    limit = _positive_int(body.get("max_completion_tokens")) or _positive_int(
        body.get("max_tokens")
    )
    return _effort(body, limit)


def _effort(body: dict[str, Any], limit: int | None) -> str | None:
    wanted = reasoning_of(body).effort
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and normalize_effort(reasoning.get("effort")) is None:
        budget = _positive_int(reasoning.get("max_tokens"))
        if budget is not None:
            return effort_for_budget(budget, limit)
    return wanted


def translate_reasoning(body: dict[str, Any], requested_max_tokens: int | None) -> dict[str, Any]:
    """The body an OpenAI-compatible host gets: OpenRouter's fields become `reasoning_effort`.
    A budget is a share of `requested_max_tokens`, the client's own cap (None: it set none),
    never of the body's `max_tokens`: that is the cap the gateway computed for the endpoint."""
    if not any(name in body for name in FIELDS):
        return body
    effort = _effort(body, requested_max_tokens)
    out = {k: v for k, v in body.items() if k not in FIELDS}
    if effort is not None:
        out["reasoning_effort"] = effort
    return out


def map_reasoning(part: dict[str, Any], exclude: bool) -> str:
    """A message or delta with the host's reasoning under `reasoning` (or none with `exclude`);
    returns the reasoning text found."""
    text = part.pop("reasoning_content", None)
    if not isinstance(text, str):
        text = part.get("reasoning")
    if not isinstance(text, str) or not text:
        if exclude:
            part.pop("reasoning", None)
        return ""
    if exclude:
        part.pop("reasoning", None)
    else:
        part["reasoning"] = text
    return text


def estimate_reasoning_tokens(
    completion_tokens: int, reasoning_chars: int, other_chars: int
) -> int:
    """llama.cpp doesn't count reasoning tokens: split completion tokens by text length."""
    total = reasoning_chars + other_chars
    if completion_tokens <= 0 or reasoning_chars <= 0 or total <= 0:
        return 0
    return max(1, round(completion_tokens * reasoning_chars / total))


def with_reasoning_tokens(usage: Usage, counted: int) -> Usage:
    """Usage carrying `counted` reasoning tokens unless the server reported its own."""
    if usage.reasoning_tokens or counted <= 0:
        return usage
    counted = min(counted, usage.completion_tokens) if usage.completion_tokens else counted
    return dataclasses.replace(usage, reasoning_tokens=counted)
