"""The soak: two replicas under a steady rate with random upstream faults for N minutes, their
resources and the ledger sampled every 10 s, and a verdict on whether each stayed flat.

Run: `python -m benchmarks.soak --minutes 30` (README, "Soak"). Not a speed benchmark.
"""
