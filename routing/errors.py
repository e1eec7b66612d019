"""Why routing could not produce a plan: unknown model, nothing left after filters, bad prefs.

RoutingError                 client_status  code
├── UnknownModel             400  model_not_found (as OpenRouter answers an unknown model)
├── NoEndpoint               503  no_endpoint_available: every endpoint disabled or unavailable
│   └── NoMatchingEndpoint   404  no_endpoint_matches: the request's own preferences removed all
└── ConflictingPreferences   400  bad_request

Same words as `providers.errors` and `gateway.errors`: `client_status`, `code`, `message`,
`metadata`. A generation whose attempts all failed is `routing.attempts.GenerationFailed`.
"""

from __future__ import annotations

from typing import Any


class RoutingError(Exception):
    client_status = 503
    code = "no_endpoint_available"  # the envelope's `metadata.reason`

    def __init__(self, message: str, *, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}


class UnknownModel(RoutingError):
    client_status = 400
    code = "model_not_found"


class NoEndpoint(RoutingError):
    """Every endpoint of the model is disabled, filtered out or unavailable."""


class ConflictingPreferences(RoutingError):
    client_status = 400
    code = "bad_request"


class NoMatchingEndpoint(NoEndpoint):
    """The client's own preferences (or an exacto pin) left no endpoint that could serve."""

    client_status = 404
    code = "no_endpoint_matches"
