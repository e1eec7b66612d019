"""The provider simulator: a fleet of fake OpenAI-compatible upstreams that are slow, cheap,
flaky, rate-limited and cache-warm on command, served over real HTTP for tests and rehearsals.

Start it with `start_fleet(profiles)` (in-process) or `gateway simulate` (CLI).
"""

from __future__ import annotations

from providers.simulator.profile import (
    FAILURE_KINDS,
    Failures,
    Profile,
    ProfileError,
    default_fleet,
    load_profiles,
)
from providers.simulator.server import Fleet, run_fleet, start_fleet
from providers.simulator.stats import ProviderStats

__all__ = [
    "FAILURE_KINDS",
    "Failures",
    "Fleet",
    "Profile",
    "ProfileError",
    "ProviderStats",
    "default_fleet",
    "load_profiles",
    "run_fleet",
    "start_fleet",
]
