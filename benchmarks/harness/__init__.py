"""Pieces shared by the benchmarks: the fast upstream, wrk runs, server processes, machine probes.

Not a benchmark itself; `benchmarks.overhead` and `benchmarks.transport` are built from these.
"""
