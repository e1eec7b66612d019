"""What a generation that did not end well is charged: the upstream's own (largest) usage when
it reported one, else the prompt and the output relayed, counted with o200k. Pure.

OpenRouter's zero-completion rule applies: an error with no output costs nothing.
"""

from __future__ import annotations

from providers.catalog import Endpoint, Price
from providers.pricing import ZERO_COST, Cost, cost_of
from providers.tokenizer import count_tokens, prompt_tokens
from providers.usage import Usage
from routing.attempts import Attempt
from routing.planner import Plan
from routing.stream import OpenedStream


def stream_usage(stream: OpenedStream, messages: object) -> Usage:
    """The usage to bill a stream by, however it ended: the largest the upstream reported
    (vLLM's continuous usage grows chunk by chunk), else an estimate of what was relayed."""
    if stream.usage is not None:
        return stream.usage
    return Usage(
        prompt_tokens=prompt_tokens(messages),
        completion_tokens=count_tokens(stream.completion_text),
    )


def charge(usage: Usage, price: Price, *, failed: bool) -> tuple[Usage, Cost]:
    """The usage and cost recorded and settled; a failure with no output is free."""
    if failed and usage.completion_tokens <= 0:
        return Usage(), ZERO_COST
    return usage, cost_of(usage, price)


def endpoint_of(plan: Plan, attempt: Attempt) -> Endpoint | None:
    """The plan's endpoint `attempt` ran on."""
    for endpoint in plan.endpoints:
        if endpoint.id == attempt.endpoint_id:
            return endpoint
    return None


def prompt_charge(plan: Plan, attempt: Attempt, messages: object) -> tuple[Usage, Cost]:
    """A generation cancelled while `attempt` was running: the prompt it had sent."""
    endpoint = endpoint_of(plan, attempt)
    if endpoint is None:
        return Usage(), ZERO_COST
    usage = Usage(prompt_tokens=prompt_tokens(messages))
    return usage, cost_of(usage, endpoint.price)
