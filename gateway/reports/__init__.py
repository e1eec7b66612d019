"""Billing reports: exact spend per key, app, model, provider and period, read from the rollups."""
