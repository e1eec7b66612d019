"""Settings, one class per concern, read from the environment once and passed down.

Not a place for defaults that belong to a single module's logic.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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


class RoutingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_ROUTING_")

    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_token_timeout_s: float = Field(default=60.0, gt=0)
    total_timeout_s: float = Field(default=600.0, gt=0)
    idle_timeout_s: float = Field(default=60.0, gt=0)  # longest silence inside an answer's body
    max_attempts: int = Field(default=6, ge=1)  # per generation, across providers
    retries_per_endpoint: int = Field(default=1, ge=0)
    backoff_base_s: float = Field(default=0.05, ge=0)
    backoff_max_s: float = Field(default=2.0, ge=0)
    generation_timeout_s: float = Field(default=900.0, gt=0)  # no retry or wait runs past it
    stats_refresh_s: float = Field(default=1.0, gt=0)  # the router's local snapshot
    stats_flush_s: float = Field(default=0.2, gt=0)  # batched stats writes to Redis
    stats_buckets: int = Field(default=15, ge=2)  # time buckets per stats window
    stats_settle_s: float = Field(default=2.0, ge=0)  # a closed bucket is re-read this long
    uptime_windows_s: tuple[float, ...] = (30, 300, 1800, 86_400, 2_592_000)
    outage_window_s: float = Field(default=30.0, gt=0)  # balanced drops recent outages
    latency_window_s: float = Field(default=1800.0, gt=0)  # TTFT/latency/throughput percentiles
    min_samples: int = Field(default=5, ge=1)  # fewer -> the catalog's advertised figures
    explore_share: float = Field(default=0.05, ge=0, le=1)  # first try for a fresh endpoint
    outage_uptime: float = Field(default=0.7, ge=0, le=1)  # below it in the outage window
    outage_min_requests: int = Field(default=3, ge=1)
    breaker_failures: int = Field(default=5, ge=1)  # consecutive failures that open it
    breaker_cooldown_s: float = Field(default=5.0, gt=0)  # doubles per failed probe
    breaker_max_cooldown_s: float = Field(default=60.0, gt=0)
    affinity_entries: int = Field(default=100_000, ge=1)  # conversations remembered per replica
    affinity_yield: float = Field(default=0.25, gt=0, le=1)  # warm cache leads unless 1/x worse
    # With Redis: replicas share which endpoint served a conversation (written behind; read only
    # for a continuing conversation this replica doesn't know). Off: per replica only.
    affinity_shared: bool = True


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
    hold_ttl_s: float = Field(default=960.0, gt=0)


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
