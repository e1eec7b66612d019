"""Settings, one class per concern, read from the environment once and passed down.

Not a place for defaults that belong to a single module's logic.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.keys import defaults as keys_defaults
from providers.provider import Timeouts
from routing import defaults as d
from routing.breaker import BreakerPolicy
from routing.config import RoutingConfig, StatsPolicy
from routing.retry import RetryPolicy
from routing.scoring import RoutingPolicy


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    log_level: str = "info"
    auth: Literal["required", "off"] | None = None  # None: off on loopback, required otherwise
    admin_token: str | None = None
    # On SIGTERM, in-flight requests (open streams too) get this long before being cut.
    shutdown_timeout_s: int = Field(default=30, ge=1)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # request line + headers: 431
    max_header_count: int = Field(default=100, ge=8)  # 431 above it
    header_timeout_s: float = Field(default=10.0, gt=0)  # a request's headers must arrive in it
    body_timeout_s: float = Field(default=60.0, gt=0)  # ...and its body, once headers are in
    max_concurrent_requests: int = Field(default=2048, ge=1)  # per worker; 503 above it
    # A stream still waiting for its first token commits its 200 after this long and then
    # sends an SSE comment this often, so idle proxies and clients don't time out.
    stream_keepalive_s: float = Field(default=2.0, gt=0)

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def auth_required(self) -> bool:
        if self.auth is not None:
            return self.auth == "required"
        return not self.loopback_only


class CatalogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    catalog: Path | None = None  # GATEWAY_CATALOG; None: the shipped gpt-oss-20b catalog


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="")

    database_url: str = "sqlite+aiosqlite:///./var/gateway.sqlite3"  # DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


class RedisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="")

    redis_url: str | None = None  # REDIS_URL; None: in-process state (embedded default)
    redis_prefix: str = "gw:"  # REDIS_PREFIX: namespaces every key, lets tests share a server


ROUTING_PREFIX = "GATEWAY_ROUTING_"


class RoutingSettings(BaseSettings):
    """The routing knobs as the env spells them; defaults are routing's own (`routing.defaults`).

    `config()` is the one place they become routing's policies. An env name under the prefix
    that names no setting (a typo) fails at start instead of being ignored.
    """

    model_config = SettingsConfigDict(env_prefix=ROUTING_PREFIX)

    connect_timeout_s: float = Field(default=d.TIMEOUTS.connect, gt=0)
    first_token_timeout_s: float = Field(default=d.TIMEOUTS.first_token, gt=0)
    total_timeout_s: float = Field(default=d.TIMEOUTS.total, gt=0)
    idle_timeout_s: float = Field(default=d.TIMEOUTS.idle, gt=0)  # silence inside a body
    max_attempts: int = Field(default=d.MAX_ATTEMPTS, ge=1)  # per generation, across providers
    retries_per_endpoint: int = Field(default=d.RETRIES_PER_ENDPOINT, ge=0)
    backoff_base_s: float = Field(default=d.BACKOFF_BASE_S, ge=0)
    backoff_max_s: float = Field(default=d.BACKOFF_MAX_S, ge=0)
    generation_timeout_s: float = Field(default=d.GENERATION_TIMEOUT_S, gt=0)
    stats_refresh_s: float = Field(default=d.STATS_REFRESH_S, gt=0)
    stats_flush_s: float = Field(default=d.STATS_FLUSH_S, gt=0)
    stats_buckets: int = Field(default=d.STATS_BUCKETS, ge=2)
    stats_settle_s: float = Field(default=d.STATS_SETTLE_S, ge=0)
    uptime_windows_s: tuple[float, ...] = d.UPTIME_WINDOWS_S
    outage_window_s: float = Field(default=d.OUTAGE_WINDOW_S, gt=0)
    latency_window_s: float = Field(default=d.LATENCY_WINDOW_S, gt=0)
    min_samples: int = Field(default=d.MIN_SAMPLES, ge=1)
    explore_share: float = Field(default=d.EXPLORE_SHARE, ge=0, le=1)
    outage_uptime: float = Field(default=d.OUTAGE_UPTIME, ge=0, le=1)
    outage_min_requests: int = Field(default=d.OUTAGE_MIN_REQUESTS, ge=1)
    breaker_failures: int = Field(default=d.BREAKER_FAILURES, ge=1)
    breaker_cooldown_s: float = Field(default=d.BREAKER_COOLDOWN_S, gt=0)
    breaker_max_cooldown_s: float = Field(default=d.BREAKER_MAX_COOLDOWN_S, gt=0)
    affinity_entries: int = Field(default=d.AFFINITY_ENTRIES, ge=1)
    affinity_yield: float = Field(default=d.AFFINITY_YIELD, gt=0, le=1)
    # With Redis: replicas share which endpoint served a conversation (written behind; read only
    # for a continuing conversation this replica doesn't know). Off: per replica only.
    affinity_shared: bool = True

    @model_validator(mode="after")
    def _no_unknown_names(self) -> RoutingSettings:
        unknown_setting(ROUTING_PREFIX, type(self).model_fields)
        return self

    def config(self) -> RoutingConfig:
        """Routing's policies from these settings (the one place they are mapped)."""
        return RoutingConfig(
            timeouts=Timeouts(
                self.connect_timeout_s,
                self.first_token_timeout_s,
                self.total_timeout_s,
                self.idle_timeout_s,
            ),
            retry=RetryPolicy(
                retries_per_endpoint=self.retries_per_endpoint,
                backoff_base_s=self.backoff_base_s,
                backoff_max_s=self.backoff_max_s,
                deadline_s=self.generation_timeout_s,
            ),
            max_attempts=self.max_attempts,
            scoring=RoutingPolicy(
                min_samples=self.min_samples,
                explore_share=self.explore_share,
                outage_uptime=self.outage_uptime,
                outage_min_requests=self.outage_min_requests,
                affinity_yield=self.affinity_yield,
            ),
            breaker=BreakerPolicy(
                failures=self.breaker_failures,
                cooldown_s=self.breaker_cooldown_s,
                max_cooldown_s=self.breaker_max_cooldown_s,
                # A half-open probe is held as long as its first token may take.
                probe_ttl_s=self.first_token_timeout_s,
            ),
            stats=StatsPolicy(
                refresh_s=self.stats_refresh_s,
                flush_s=self.stats_flush_s,
                buckets=self.stats_buckets,
                settle_s=self.stats_settle_s,
                uptime_windows_s=tuple(self.uptime_windows_s),
                outage_window_s=self.outage_window_s,
                latency_window_s=self.latency_window_s,
            ),
            affinity_entries=self.affinity_entries,
        )


def unknown_setting(prefix: str, fields: Iterable[str]) -> None:
    """Refuse an env name under `prefix` that names none of `fields` (ValueError)."""
    known = {prefix + name.upper() for name in fields}
    for name in os.environ:
        upper = name.upper()
        if upper.startswith(prefix) and upper not in known:
            close = difflib.get_close_matches(upper, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"unknown setting {name}{hint}")


class LedgerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_LEDGER_")

    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=0.2, gt=0)
    retention_days: int = Field(default=90, ge=1)
    claim_idle_s: float = Field(default=30.0, gt=0)  # a writer silent this long is taken over
    drain_timeout_s: float = Field(default=10.0, ge=0)  # shutdown waits this long to drain
    # Where the Redis stream is written to the database (without Redis: always in process).
    # "process": `gateway serve` runs one writer process next to its workers (an app served any
    # other way writes in process); "worker": every serving worker runs a writer; "external":
    # workers only queue and `gateway ledger-writer`, run separately, writes.
    writer: Literal["process", "worker", "external"] = "process"
    # With Redis: where end-of-request events the stream refused are kept (fsynced) until
    # replayed, and how large one process's spool may grow before requests are refused (503).
    spool_dir: Path = Path("var/spool")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)


class KeysSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_KEYS_")

    refresh_interval_s: float = Field(default=0.25, gt=0)  # key cache reload: revocation latency
    full_reload_s: float = Field(default=60.0, gt=0)  # key cache rebuilt from scratch
    # A dead request's spend hold expires after this; keep it above the generation timeout.
    hold_ttl_s: float = Field(default=keys_defaults.HOLD_TTL_S, gt=0)
    # With Redis, a key with only a spend limit is admitted from each worker's lease: a share of
    # the key's room taken in one script call, renewed in the background, reclaimed this long
    # after its worker stops renewing it (killed). `lease = false`: every request checks Redis.
    lease: bool = True
    lease_share: float = Field(default=keys_defaults.LEASE_SHARE, gt=0, le=1)
    lease_ttl_s: float = Field(default=keys_defaults.LEASE_TTL_S, ge=1)


class UpstreamSettings(BaseSettings):
    """How the gateway reaches upstreams (both transports). Proxies come from HTTP(S)_PROXY and
    NO_PROXY; the catalog's `transport` and `keepalive_s` are per endpoint."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_UPSTREAM_")

    ca_bundle: str | None = None  # PEM file of CAs to trust instead of the system's
    client_cert: str | None = None  # PEM client certificate (mutual TLS) ...
    client_key: str | None = None  # ... and its key, when not in the same file
    max_connections: int = Field(default=2048, ge=1)  # open upstream connections in all
    max_per_origin: int = Field(default=1024, ge=1)  # ... and to one scheme://host:port
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)  # one response's head
    max_decoded_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)  # an inflated gzip body
    user_agent: str = "llm-routing-gateway/0.1"


class Settings:
    """Every concern's settings, built once from the environment."""

    def __init__(
        self,
        server: ServerSettings | None = None,
        catalog: CatalogSettings | None = None,
        database: DatabaseSettings | None = None,
        redis: RedisSettings | None = None,
        routing: RoutingSettings | None = None,
        ledger: LedgerSettings | None = None,
        keys: KeysSettings | None = None,
        upstream: UpstreamSettings | None = None,
    ) -> None:
        self.server = server or ServerSettings()
        self.catalog = catalog or CatalogSettings()
        self.database = database or DatabaseSettings()
        self.redis = redis or RedisSettings()
        self.routing = routing or RoutingSettings()
        self.ledger = ledger or LedgerSettings()
        self.keys = keys or KeysSettings()
        self.upstream = upstream or UpstreamSettings()
