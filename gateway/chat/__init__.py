"""Chat completions: decode the client request, route it, relay the answer."""
