"""`python -m benchmarks.peers`: this gateway and its peers (LiteLLM proxy, Portkey's gateway)
under the same wrk load against the same stub upstream, in one run; a table and a chart.
"""
