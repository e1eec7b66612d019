"""The client's routing request: model, mode and OpenRouter's `provider` preferences.

Shapes only; filtering by them is `routing.filters`, ordering is `routing.scoring`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

Mode = Literal["balanced", "nitro", "floor", "exacto"]
MODES: tuple[Mode, ...] = ("balanced", "nitro", "floor", "exacto")
SortBy = Literal["price", "throughput", "latency", "exacto"]


class Percentiles(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    p50: float | None = None
    p75: float | None = None
    p90: float | None = None
    p99: float | None = None


class Sort(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    by: SortBy | None = None  # None: only the partition is set (e.g. by OpenRouter's `route`)
    partition: Literal["model", "none"] = "model"


class MaxPrice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per 1M tokens (prompt, completion) and per request; a hard filter."""

    prompt: float | None = None
    completion: float | None = None
    request: float | None = None
    image: float | None = None


class ProviderPreferences(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OpenRouter's `provider` object."""

    order: tuple[str, ...] | None = None
    allow_fallbacks: bool = True
    require_parameters: bool = False
    data_collection: Literal["allow", "deny"] = "allow"
    zdr: bool | None = None
    only: tuple[str, ...] | None = None
    ignore: tuple[str, ...] | None = None
    quantizations: tuple[str, ...] | None = None
    sort: SortBy | Sort | None = None
    max_price: MaxPrice | None = None
    preferred_min_throughput: float | Percentiles | None = None
    preferred_max_latency: float | Percentiles | None = None


NO_PREFERENCES = ProviderPreferences()


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """Everything routing needs from one client request, already validated."""

    model: str  # public id without a mode suffix
    mode: Mode
    preferences: ProviderPreferences = NO_PREFERENCES
    fallback_models: tuple[str, ...] = ()
    parameters: frozenset[str] = frozenset()  # request fields that endpoints must support
    prompt_tokens: int = 0  # estimate, for price filters and cache affinity
    max_tokens: int | None = None  # the completion cap per choice (one rule: see chat.request)
    stream: bool = False
    affinity_key: str | None = None  # conversation identity for cache stickiness
    continued: bool = False  # it carries earlier turns: another replica may have served them
    explain: bool = False
    mode_from_suffix: bool = False  # the client named the mode (`:nitro`), not a default
    ignored: tuple[tuple[str, str], ...] = ()  # request fields accepted without effect -> why
    prompt_bound: int = 0  # prompt tokens can't exceed this (the key's hold); 0: prompt_tokens
    choices: int = 1  # completions generated per request (`n`, `best_of`): the hold's multiplier


def split_mode(model: str) -> tuple[str, Mode | None]:
    """`openai/gpt-oss-20b:nitro` -> (`openai/gpt-oss-20b`, "nitro")."""
    base, sep, suffix = model.rpartition(":")
    if sep and suffix in MODES:
        return base, suffix
    return model, None
