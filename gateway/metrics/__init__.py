"""Prometheus metrics of the request path and the `/metrics` endpoint."""
