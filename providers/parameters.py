"""Per-endpoint request parameters: which request fields an endpoint must declare, and the body
an endpoint is sent (the ones it doesn't support dropped, as OpenRouter does). Pure."""

from __future__ import annotations

from typing import Any

from providers.catalog import Endpoint

# Request fields that, when present, an endpoint must list in `supported_parameters` to get
# them (and to be chosen at all under `provider.require_parameters`).
ROUTED_PARAMETERS = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "reasoning",
        "include_reasoning",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "structured_outputs",
        "parallel_tool_calls",
        "min_p",
    }
)
# Never dropped: they bound the answer's length, so the key's worst-case hold and the client's
# budget hold whatever the endpoint declares.
KEPT = frozenset({"max_tokens", "max_completion_tokens"})


def dropped_parameters(endpoint: Endpoint, parameters: frozenset[str]) -> frozenset[str]:
    """The request's parameters this endpoint would not get. An endpoint that declares no
    `supported_parameters` gets everything (nothing is known about it)."""
    supported = endpoint.supported_parameters
    if not supported or not parameters:
        return frozenset()
    return parameters - KEPT - frozenset(supported)


def upstream_body(
    endpoint: Endpoint, body: dict[str, Any], parameters: frozenset[str]
) -> dict[str, Any]:
    """The client's body for this endpoint: its upstream model, unsupported parameters out."""
    dropped = dropped_parameters(endpoint, parameters)
    if not dropped:
        return {**body, "model": endpoint.upstream_model}
    out = {k: v for k, v in body.items() if k not in dropped}
    out["model"] = endpoint.upstream_model
    return out
