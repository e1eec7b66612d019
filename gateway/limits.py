"""Bounds on what clients and upstreams control, in one place (README: Configuration, Limits).

Strings longer than these are cut at the edge (ids are refused with a 400); upstream figures
past them are capped. Server limits that operators tune (body size, header size, timeouts,
concurrency) are settings (`gateway.settings.ServerSettings`) instead.
"""

from __future__ import annotations

MAX_APP_CHARS = 256  # X-Title / HTTP-Referer kept per generation (part of the rollup's key)
MAX_MODEL_CHARS = 256  # a model id as the client wrote it
MAX_ID_CHARS = 256  # `session_id` / `x-session-id` and `user` (400 above)
MAX_EXPLANATION_CHARS = 256  # each string in a stored routing explanation
MAX_MESSAGE_CHARS = 2000  # error text kept per generation or attempt
MAX_JSON_DEPTH = 64  # nesting of a request body (arrays and objects)
