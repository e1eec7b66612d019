"""The retry rule of one endpoint: which failures are retried, how long to wait, when to stop.

A tenacity policy built per endpoint by the executor; it holds no state of its own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from providers.errors import UpstreamError
from routing import defaults


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one endpoint is retried (defaults: `routing.defaults`)."""

    retries_per_endpoint: int = defaults.RETRIES_PER_ENDPOINT  # while other endpoints remain
    backoff_base_s: float = defaults.BACKOFF_BASE_S
    backoff_max_s: float = defaults.BACKOFF_MAX_S
    deadline_s: float = defaults.GENERATION_TIMEOUT_S  # the whole generation: nothing runs past it


def retryable(exc: BaseException, alone: bool) -> bool:
    """Worth another try of the same endpoint; `alone`: no other endpoint may be tried."""
    if not isinstance(exc, UpstreamError) or not exc.retryable:
        return False
    if exc.answered:  # the upstream had started answering: it may have billed this attempt
        return False
    # A Retry-After sends the request elsewhere at once, unless nowhere else is allowed.
    return exc.retry_after is None or alone


def retrying(
    policy: RetryPolicy,
    *,
    alone: bool,
    limit: int,
    exhausted: Callable[[], bool],
    deadline: float,
    sleep: Callable[[float], Awaitable[None]],
) -> AsyncRetrying:
    """Tenacity for one endpoint: jittered backoff or the upstream's Retry-After, at most
    `limit` tries, none once the generation's budget is `exhausted` or past its `deadline`
    (monotonic)."""
    backoff = wait_random_exponential(multiplier=policy.backoff_base_s, max=policy.backoff_max_s)

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, UpstreamError) and exc.retry_after is not None:
            return exc.retry_after
        return float(backoff(state))

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= limit or exhausted():
            return True
        return time.monotonic() + state.upcoming_sleep >= deadline

    return AsyncRetrying(
        retry=retry_if_exception(lambda exc: retryable(exc, alone)),
        wait=wait,
        stop=stop,
        sleep=sleep,
        reraise=True,
    )
