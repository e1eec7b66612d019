"""The most output one attempt may produce: the completion cap an endpoint is sent, which is
also what a key's hold is priced from. Pure."""

from __future__ import annotations

from providers.catalog import Endpoint


def completion_bound(endpoint: Endpoint, prompt_tokens: int, max_tokens: int | None) -> int:
    """The tightest of the request's cap, the endpoint's cap and the context left after the
    prompt estimate (at least 1). The executor sends exactly this as `max_tokens`, so no
    upstream may bill more completion tokens per choice than the hold assumed."""
    bound = max(endpoint.context_length - prompt_tokens, 1)
    if max_tokens is not None and max_tokens < bound:
        bound = max_tokens
    cap = endpoint.max_completion_tokens
    return cap if cap is not None and cap < bound else bound
