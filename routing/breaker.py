"""Circuit breaker per endpoint: opens on sustained failure or a Retry-After, probes to close.

State transitions only, no I/O: sharing states and the half-open probe token is the stats store's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import msgspec

from routing import defaults

Phase = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One endpoint's breaker as every replica shares it (wall-clock times, unix seconds)."""

    endpoint_id: str
    open: bool = False
    until: float = 0.0  # no traffic before this while open
    probe: bool = True  # opened by failures: one probe closes it; False: a Retry-After cooldown
    trips: int = 0  # opens since the last recovery; each doubles the cooldown
    recovered_at: float = 0.0  # the last recovery: the outage window counts from here
    changed_at: float = 0.0
    reason: str = ""

    def phase(self, now: float) -> Phase:
        if not self.open:
            return "closed"
        if now < self.until:
            return "open"
        return "half_open" if self.probe else "closed"

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @staticmethod
    def from_json(raw: bytes | str) -> BreakerState:
        return msgspec.json.decode(raw, type=BreakerState)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and for how long (defaults: `routing.defaults`)."""

    failures: int = defaults.BREAKER_FAILURES
    cooldown_s: float = defaults.BREAKER_COOLDOWN_S
    max_cooldown_s: float = defaults.BREAKER_MAX_COOLDOWN_S
    probe_ttl_s: float = defaults.BREAKER_PROBE_TTL_S


class Breakers:
    """This replica's view of every breaker. Transitions return the state to share, or None."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._states: dict[str, BreakerState] = {}
        self._streak: dict[str, int] = {}

    def get(self, endpoint_id: str) -> BreakerState | None:
        return self._states.get(endpoint_id)

    def states(self) -> Mapping[str, BreakerState]:
        return self._states

    def phase(self, endpoint_id: str, now: float) -> Phase:
        state = self._states.get(endpoint_id)
        return "closed" if state is None else state.phase(now)

    def on_success(self, endpoint_id: str, now: float) -> BreakerState | None:
        self._streak.pop(endpoint_id, None)
        state = self._states.get(endpoint_id)
        if state is None or not state.open or now < state.until:
            return None
        recovered = now if state.probe else state.recovered_at
        return self._set(
            replace(state, open=False, trips=0, recovered_at=recovered, changed_at=now, reason="")
        )

    def on_failure(self, endpoint_id: str, now: float) -> BreakerState | None:
        streak = self._streak.get(endpoint_id, 0) + 1
        self._streak[endpoint_id] = streak
        state = self._states.get(endpoint_id)
        phase = "closed" if state is None else state.phase(now)
        if phase == "half_open":
            assert state is not None
            return self._trip(endpoint_id, now, state.trips + 1, "probe failed")
        if phase == "closed" and streak >= self.policy.failures:
            trips = state.trips + 1 if state is not None else 1
            return self._trip(endpoint_id, now, trips, f"{streak} consecutive failures")
        return None

    def on_outage(self, endpoint_id: str, now: float, reason: str) -> BreakerState | None:
        """Shared stats show sustained failure (maybe seen only by other replicas)."""
        state = self._states.get(endpoint_id)
        if state is not None and state.phase(now) != "closed":
            return None
        trips = state.trips + 1 if state is not None else 1
        return self._trip(endpoint_id, now, trips, reason)

    def on_retry_after(self, endpoint_id: str, now: float, seconds: float) -> BreakerState | None:
        """The upstream asked for a pause: out of rotation until then, no probe needed after."""
        until = now + seconds
        state = self._states.get(endpoint_id) or BreakerState(endpoint_id)
        if state.open and state.until >= until:
            return None
        failing = state.open and state.probe and state.phase(now) != "closed"
        return self._set(
            replace(
                state,
                open=True,
                until=until,
                probe=failing,
                changed_at=now,
                reason=f"Retry-After {seconds:g}s",
            )
        )

    def merge(self, remote: Mapping[str, BreakerState]) -> bool:
        """Adopt states other replicas wrote more recently; True if anything changed."""
        changed = False
        for endpoint_id, state in remote.items():
            mine = self._states.get(endpoint_id)
            if mine is None or state.changed_at > mine.changed_at:
                self._states[endpoint_id] = state
                changed = True
        return changed

    def _trip(self, endpoint_id: str, now: float, trips: int, reason: str) -> BreakerState:
        policy = self.policy
        cooldown = min(policy.cooldown_s * 2 ** max(trips - 1, 0), policy.max_cooldown_s)
        previous = self._states.get(endpoint_id)
        recovered = previous.recovered_at if previous is not None else 0.0
        self._streak.pop(endpoint_id, None)
        return self._set(
            BreakerState(
                endpoint_id,
                open=True,
                until=now + cooldown,
                probe=True,
                trips=trips,
                recovered_at=recovered,
                changed_at=now,
                reason=reason,
            )
        )

    def _set(self, state: BreakerState) -> BreakerState:
        self._states[state.endpoint_id] = state
        return state
