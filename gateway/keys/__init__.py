"""API keys: issuing, authenticating, spend and rate limits, per-key routing defaults.

The chat path only reads the in-process key cache and calls the limiter; the database is the
admin API's and the CLI's.
"""
