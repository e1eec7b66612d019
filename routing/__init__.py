"""Routing: which endpoints serve a generation, in what order, and what happens on failure.

Pure decisions and live stats; never imports the HTTP framework.
"""
