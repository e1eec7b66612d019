"""HTTP surface of the gateway: app factory, settings, controllers, ledger, CLI.

Builds on `routing` and `providers`; they never import it.
"""
