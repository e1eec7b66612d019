"""Routing and keys settings: defaults from one source, one mapping to routing's policies, typos
refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from gateway.keys.defaults import HOLD_TTL_S, LEASE_SHARE, LEASE_TTL_S
from gateway.settings import KeysSettings, RoutingSettings
from providers.provider import Timeouts
from routing.breaker import BreakerPolicy
from routing.config import RoutingConfig, StatsPolicy
from routing.retry import RetryPolicy
from routing.scoring import RoutingPolicy


def test_settings_left_alone_give_routings_own_defaults() -> None:
    config = RoutingSettings().config()
    assert config.timeouts == Timeouts()
    assert config.retry == RetryPolicy()
    assert config.scoring == RoutingPolicy()
    assert config.stats == StatsPolicy()
    # The one derived value: a half-open probe is held as long as a first token may take.
    assert config.breaker == replace(BreakerPolicy(), probe_ttl_s=Timeouts().first_token)
    assert config == replace(RoutingConfig(), breaker=config.breaker)


def test_each_setting_reaches_its_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ROUTING_OUTAGE_UPTIME", "0.5")
    monkeypatch.setenv("GATEWAY_ROUTING_GENERATION_TIMEOUT_S", "30")
    monkeypatch.setenv("GATEWAY_ROUTING_STATS_BUCKETS", "4")
    config = RoutingSettings(breaker_failures=2, first_token_timeout_s=7).config()
    assert config.scoring.outage_uptime == 0.5
    assert config.retry.deadline_s == 30
    assert config.stats.buckets == 4
    assert config.breaker.failures == 2 and config.breaker.probe_ttl_s == 7
    assert config.timeouts.first_token == 7


def test_a_misspelt_setting_fails_at_start_naming_the_right_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_ROUTING_OUTAGE_UPTIM", "0.5")
    with pytest.raises(ValidationError, match="did you mean GATEWAY_ROUTING_OUTAGE_UPTIME"):
        RoutingSettings()
    with pytest.raises(ValidationError):
        RoutingSettings(outage_uptim=0.5)  # type: ignore[call-arg]


def test_keys_settings_left_alone_give_the_limiters_own_defaults() -> None:
    # Written twice (settings may not import gateway.keys: keys.keyring imports settings); this
    # keeps the two in step.
    keys = KeysSettings()
    assert (keys.hold_ttl_s, keys.lease_share, keys.lease_ttl_s) == (
        HOLD_TTL_S,
        LEASE_SHARE,
        LEASE_TTL_S,
    )
