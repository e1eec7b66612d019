"""Test support: servers and data the suites share."""
