"""Routing's named defaults: the one place each routing knob's default value is written.

The policy dataclasses take their field defaults from here and `gateway.settings` reads the
same names; nothing else restates them. Not configuration loading (that is `gateway.settings`).
"""

from __future__ import annotations

from providers.provider import Timeouts

# One attempt's limits (connect, first token, total, idle): `providers.provider.Timeouts`.
TIMEOUTS = Timeouts()

# The generation: its attempt budget and retry rule (`routing.retry`).
GENERATION_TIMEOUT_S = 900.0  # no attempt or wait runs past it
MAX_ATTEMPTS = 6  # per generation, across endpoints
RETRIES_PER_ENDPOINT = 1  # extra tries of one endpoint while others remain
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 2.0

# Live stats (`routing.live`, `routing.buckets`).
STATS_REFRESH_S = 1.0  # the planner's local snapshot is rebuilt this often
STATS_FLUSH_S = 0.2  # recorded attempts are pushed to the store this often
STATS_BUCKETS = 15  # time buckets per stats window
STATS_SETTLE_S = 2.0  # a closed bucket is re-read this long
UPTIME_WINDOWS_S: tuple[float, ...] = (30, 300, 1800, 86_400, 2_592_000)
OUTAGE_WINDOW_S = 30.0
LATENCY_WINDOW_S = 1800.0  # TTFT, latency and throughput percentiles

# Scoring and gating (`routing.scoring.RoutingPolicy`).
MIN_SAMPLES = 5  # fewer measured attempts -> the catalog's advertised figures
EXPLORE_SHARE = 0.05  # chance a fresh endpoint is tried first (balanced, nitro)
OUTAGE_UPTIME = 0.7  # below this in the outage window -> gated to the back
OUTAGE_MIN_REQUESTS = 3  # ...once at least this many attempts were counted
AFFINITY_YIELD = 0.25  # a warm endpoint leads unless another scores 1/this better
AFFINITY_MIN_SAVING = 0.1  # ...and only when its cache cuts the expected cost this much
COMPLETION_TOKENS = 256  # expected output when the request sets no max_tokens
MAX_COMPLETION_TOKENS = 1024  # cap of that expectation when it does
FREE_PRICE_FLOOR = 0.1  # a free endpoint costs this share of the cheapest paid one

# Circuit breaker (`routing.breaker.BreakerPolicy`).
BREAKER_FAILURES = 5  # consecutive failed attempts (on one replica) that open it
BREAKER_COOLDOWN_S = 5.0  # the first open; doubled on every failed probe
BREAKER_MAX_COOLDOWN_S = 60.0
BREAKER_PROBE_TTL_S = 30.0  # how long one replica holds the half-open probe token

# Cache affinity (`routing.affinity`).
AFFINITY_ENTRIES = 100_000  # conversations remembered per replica
