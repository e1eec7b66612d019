"""Upstream side of the gateway: catalog, pricing, adapters and the provider simulator.

Knows nothing of routing or HTTP serving; `routing/` and `gateway/` build on it.
"""
