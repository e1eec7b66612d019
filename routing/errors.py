"""Why routing could not produce a plan: unknown model, nothing left after filters, bad prefs.

RoutingError                 503
├── UnknownModel             400  (as OpenRouter answers an unknown model)
├── NoEndpoint               503  every endpoint disabled or unavailable
│   └── NoMatchingEndpoint   404  the request's own preferences removed every endpoint
└── ConflictingPreferences   400
"""

from __future__ import annotations

from typing import Any


class RoutingError(Exception):
    status = 503
    code = "no_endpoint_available"  # the envelope's `metadata.reason`

    def __init__(self, message: str, *, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}


class UnknownModel(RoutingError):
    status = 400
    code = "model_not_found"


class NoEndpoint(RoutingError):
    """Every endpoint of the model is disabled, filtered out or unavailable."""


class ConflictingPreferences(RoutingError):
    status = 400
    code = "bad_request"


class NoMatchingEndpoint(NoEndpoint):
    """The client's own preferences (or an exacto pin) left no endpoint that could serve."""

    status = 404
    code = "no_endpoint_matches"
