"""The planner's gate step: which candidates wait behind the others right now, and why.

A candidate arrives with its outage gate (from stats); an open breaker, a due half-open probe
or the deployment's availability signal (a llama.cpp server loading or with every slot busy)
override it. This only orders the plan: whether an endpoint is busy when it is about to be
called is decided once, by `routing.admission`, whose count wins. Pure: breaker states, the
clock and the availability answer are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from routing.breaker import BreakerState
from routing.scoring import OPEN, OUTAGE, PROBE, Candidate

# Why an endpoint can't take a request right now (loading, every slot busy), or None. Read from
# memory (e.g. `providers.llamacpp_health.LlamaCppMonitor.unavailable`); such an endpoint is
# gated behind the available ones, even those behind it in `provider.order`.
Availability = Callable[[str], str | None]


def gate(
    candidates: list[Candidate],
    breakers: Mapping[str, BreakerState],
    now: float,
    availability: Availability | None,
) -> set[str]:
    """Set each candidate's gate from its breaker and availability; the ids found unavailable."""
    unavailable: set[str] = set()
    if not breakers and availability is None:
        return unavailable
    for c in candidates:
        endpoint_id = c.facts.id
        gated, reason = c.gate, c.gate_reason
        if breakers:
            gated, reason = breaker_gate(breakers.get(endpoint_id), now, gated, reason)
        why = availability(endpoint_id) if availability is not None else None
        if why is not None:
            gated, reason = max(gated, OUTAGE), f"unavailable: {why}"
            unavailable.add(endpoint_id)
        if gated != c.gate or reason != c.gate_reason:
            c.regate(gated, reason)
    return unavailable


def breaker_gate(
    breaker: BreakerState | None, now: float, gated: int, reason: str
) -> tuple[int, str]:
    """An open breaker gates to the back; a due half-open probe goes first."""
    if breaker is None or not breaker.open:
        return gated, reason
    phase = breaker.phase(now)
    if phase == "open":
        return OPEN, breaker.reason
    if phase == "half_open":
        return PROBE, "half-open: due for a probe"
    return gated, reason
