"""What the gateway adds to every request, with every feature on, against its own fast upstream.

Run: `.venv/bin/python -m benchmarks.overhead` (a few minutes) or `... --quick` (a smoke run).
"""
