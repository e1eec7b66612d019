"""Token usage as upstreams report it, normalized to one shape.

Only counting lives here; money is `providers.pricing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's cache
    cache_write_tokens: int = 0  # prompt tokens written to the provider's cache
    reasoning_tokens: int = 0  # part of completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI `usage` object, with the detail blocks always present."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "cache_write_tokens": self.cache_write_tokens,
            },
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


# No single request reports more: a larger count is a broken upstream, and is capped here so
# that it can neither overflow the ledger's INTEGER columns nor bill without bound.
MAX_REPORTED_TOKENS = 10_000_000


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return min(value, MAX_REPORTED_TOKENS)
    return 0


def normalize_usage(raw: Any) -> Usage:
    """Read an OpenAI-style `usage` object, tolerating the variants providers send.

    Cached tokens come as `prompt_tokens_details.cached_tokens` (OpenAI), `prompt_cache_hit_tokens`
    (DeepSeek style) or `cache_read_input_tokens` (Anthropic style); cache writes likewise.
    """
    if not isinstance(raw, dict):
        return Usage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    if not isinstance(prompt_details, dict):
        prompt_details = {}
    if not isinstance(completion_details, dict):
        completion_details = {}
    cached = (
        _int(prompt_details.get("cached_tokens"))
        or _int(raw.get("prompt_cache_hit_tokens"))
        or _int(raw.get("cache_read_input_tokens"))
    )
    cache_write = _int(prompt_details.get("cache_write_tokens")) or _int(
        raw.get("cache_creation_input_tokens")
    )
    prompt = _int(raw.get("prompt_tokens"))
    completion = _int(raw.get("completion_tokens"))
    reasoning = _int(completion_details.get("reasoning_tokens")) or _int(
        raw.get("reasoning_tokens")
    )
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(cached, prompt),
        cache_write_tokens=min(cache_write, max(prompt - cached, 0)),
        reasoning_tokens=min(reasoning, completion) if completion else reasoning,
    )
