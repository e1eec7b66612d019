"""The keys' named defaults, in one place: the settings and the limiter both read them. No
imports, so `gateway.settings` can read it without importing the limiter."""

HOLD_TTL_S = 960.0  # a hold left by a crashed request is released after this long
LEASE_SHARE = 0.1  # a lease takes this part of what is left of the key's limit
LEASE_TTL_S = 10.0  # a lease not renewed (its worker killed) is reclaimed after this
