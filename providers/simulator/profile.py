"""Profiles of simulated providers: speed, length, failure rates, prompt cache; and their TOML file.

Pure data and validation; what a profile does to a request is `providers.simulator.outcome`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]

FLEET_FILE = "simulated-fleet.toml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ProfileError(ValueError):
    """A profile, a profile change or a profiles file breaks the documented shape."""


class Failures(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Probability (0..1) that a request fails in each way; the rates must sum to at most 1."""

    http_500: Rate = 0.0
    http_502: Rate = 0.0
    http_503: Rate = 0.0
    http_429: Rate = 0.0  # answered with a `Retry-After: <Profile.retry_after_s>` header
    hang: Rate = 0.0  # no answer until the client gives up (or `Profile.hang_max_s`)
    reset: Rate = 0.0  # connection reset before any response byte
    stream_cut: Rate = 0.0  # connection closed after `Profile.stream_cut_after` chunks
    invalid_json: Rate = 0.0  # 200 whose body is not JSON
    empty: Rate = 0.0  # 200 with an empty completion

    def __post_init__(self) -> None:
        total = sum(self.rates().values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"failure rates sum to {total:g}, more than 1")

    def rates(self) -> dict[str, float]:
        """Each failure kind with its rate, in the fixed order they are drawn in."""
        return {name: getattr(self, name) for name in self.__struct_fields__}


FAILURE_KINDS: tuple[str, ...] = Failures.__struct_fields__


class Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How one simulated provider behaves. The defaults are an instant, perfect upstream."""

    seed: int = 0  # with the provider name, seeds every random draw
    models: tuple[str, ...] = ("openai/gpt-oss-20b",)  # listed by /v1/models
    strict_models: bool = False  # when true, any other requested model gets 404
    ttft_ms: NonNegative = 0.0  # mean time to first token
    ttft_jitter_ms: NonNegative = 0.0  # ttft is drawn uniformly in mean ± jitter
    tokens_per_s: NonNegative = 0.0  # output speed; 0 means unpaced (instant)
    completion_tokens: Count = 32  # content tokens wanted, before max_tokens
    completion_jitter_tokens: Count = 0  # drawn uniformly in ± jitter
    reasoning_tokens: Count = 0  # reasoning tokens before the content (part of completion)
    stream_chunk_tokens: Positive = 1  # tokens per streamed chunk
    context_length: Positive = 131072  # longer prompts get 400 context_length_exceeded
    down: bool = False  # every request answers 503
    api_key: str | None = None  # when set, requests need `Authorization: Bearer <api_key>`
    failures: Failures = msgspec.field(default_factory=Failures)
    retry_after_s: Count = 1  # the Retry-After header of a 429
    stream_cut_after: Count = 2  # chunks sent before a stream_cut
    hang_max_s: NonNegative = 600.0  # a hung request is dropped after this long at most
    cache_ttl_s: NonNegative = 300.0  # prompt cache lifetime; 0 turns the cache off
    cache_min_tokens: Count = 1024  # shorter prompts are never cached
    cache_block_tokens: Positive = 128  # cached tokens are reported in multiples of this
    llamacpp_timings: bool = False  # add llama.cpp's `timings` object to responses
    # Streamed usage: "final" (one usage chunk, as with `include_usage`), "none" (no usage at
    # all), "continuous" (also a running total on every chunk, as vLLM's continuous_usage_stats)
    stream_usage: Literal["final", "none", "continuous"] = "final"
    # Which cap wins when a request carries both aliases (llama.cpp and some vLLM builds read
    # `max_tokens`; OpenAI reads `max_completion_tokens`).
    cap_alias: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"


def profile_to_dict(profile: Profile, *, redact: bool = False) -> dict[str, Any]:
    """The profile as JSON-ready builtins; `redact` hides the api key."""
    data: dict[str, Any] = msgspec.to_builtins(profile)
    if redact and data.get("api_key") is not None:
        data["api_key"] = "***"
    return data


def parse_profile(data: Mapping[str, Any]) -> Profile:
    """Validate builtins (from TOML or JSON) into a profile, or raise `ProfileError` saying why."""
    try:
        return msgspec.convert(dict(data), Profile)
    except msgspec.ValidationError as exc:
        raise ProfileError(str(exc)) from exc


def apply_changes(profile: Profile, changes: Mapping[str, Any]) -> Profile:
    """A new profile with `changes` applied; `failures` may itself be a partial table."""
    merged = profile_to_dict(profile)
    for key, value in changes.items():
        if key == "failures" and isinstance(value, Mapping):
            merged["failures"] = {**merged["failures"], **value}
        else:
            merged[key] = value
    return parse_profile(merged)


def check_name(name: str) -> str:
    """A provider name is one URL path segment and must not start with `_` (control API)."""
    if not _NAME.fullmatch(name):
        raise ProfileError(f"provider name {name!r} must match {_NAME.pattern}")
    return name


def parse_profiles(document: Mapping[str, Any]) -> dict[str, Profile]:
    """Profiles from a parsed TOML document shaped `[providers.NAME]`."""
    unknown = set(document) - {"providers"}
    if unknown:
        raise ProfileError(f"unknown top-level keys {sorted(unknown)}; expected [providers.NAME]")
    tables = document.get("providers", {})
    if not isinstance(tables, Mapping):
        raise ProfileError("`providers` must be a table of [providers.NAME] tables")
    profiles: dict[str, Profile] = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ProfileError(f"providers.{name} must be a table")
        try:
            profiles[check_name(name)] = parse_profile(table)
        except ProfileError as exc:
            raise ProfileError(f"providers.{name}: {exc}") from exc
    return profiles


def load_profiles(path: str | Path) -> dict[str, Profile]:
    """Read a profiles TOML file; raise `ProfileError` naming the file and the reason."""
    try:
        with Path(path).open("rb") as file:
            document = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    try:
        return parse_profiles(document)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from exc


def default_fleet() -> dict[str, Profile]:
    """The shipped fleet mirroring the gpt-oss-20b catalog (`providers/catalogs/`)."""
    text = resources.files("providers").joinpath("catalogs", FLEET_FILE).read_text("utf-8")
    return parse_profiles(tomllib.loads(text))
