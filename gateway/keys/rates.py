"""Rate-limit arithmetic (GCRA): one "theoretical arrival time" per key and limit.

Pure; `InProcessLimiter` runs it in Python and `RedisLimiter` runs the same steps in Lua.
A limit of N per minute lets N through at once, then one every 60/N s: no window edges.
Time is integer microseconds, so sums stay exact (also as Lua doubles: < 2^53).
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_US = 60_000_000


@dataclass(frozen=True, slots=True)
class RateCheck:
    tat_us: int  # the arrival time to store when admitted
    retry_after_us: int  # > 0: refused, wait this long
    remaining: int  # requests (or tokens) still allowed right now
    reset_us: int  # unix time when the allowance is full again


def request_step_us(per_minute: int) -> int:
    """Time one request uses up; rounded down so a burst of exactly N always passes."""
    return max(WINDOW_US // per_minute, 1)


def token_cost_us(per_minute: int, tokens: int) -> int:
    """Time `tokens` use up; rounded up so usage is never under-counted."""
    return -(-tokens * WINDOW_US // per_minute)


def check_requests(tat_us: int | None, now_us: int, per_minute: int) -> RateCheck:
    """Admit one request if the bucket has room; `tat_us` is the stored value or None."""
    step = request_step_us(per_minute)
    tat = max(tat_us or now_us, now_us)
    retry = tat + step - WINDOW_US - now_us
    if retry > 0:
        return RateCheck(tat, retry, 0, tat)
    new_tat = tat + step
    return RateCheck(new_tat, 0, (WINDOW_US - (new_tat - now_us)) // step, new_tat)


def check_tokens(tat_us: int | None, now_us: int, per_minute: int) -> RateCheck:
    """Admit if the token bucket is not overdrawn; tokens are charged later by `spend_tokens`."""
    tat = max(tat_us or now_us, now_us)
    retry = tat - WINDOW_US - now_us
    if retry >= 0:
        return RateCheck(tat, max(retry, 1), 0, tat)
    remaining = (WINDOW_US - (tat - now_us)) * per_minute // WINDOW_US
    return RateCheck(tat, 0, remaining, tat)


def spend_tokens(tat_us: int | None, now_us: int, per_minute: int, tokens: int) -> int:
    """The arrival time after `tokens` were used; it may run past the window (a debt)."""
    return max(tat_us or now_us, now_us) + token_cost_us(per_minute, tokens)
