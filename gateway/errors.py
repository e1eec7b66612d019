"""Client-facing errors and the one place any failure becomes the error envelope.

    {"error": {"code": <HTTP status>, "message", "type": <OpenAI type>,
               "metadata": {"reason": <string code>, ...}}}

    GatewayError                 status   metadata.reason
    ├── BadRequest               400      bad_request
    ├── Unauthorized             401      unauthorized
    ├── PaymentRequired          402      insufficient_credits
    ├── Forbidden                403      forbidden
    ├── NotFound                 404      not_found
    ├── PayloadTooLarge          413      payload_too_large
    ├── UnsupportedMediaType     415      unsupported_media_type
    ├── RateLimited              429      rate_limited
    └── NoEndpointAvailable      503      no_endpoint_available
Routing errors (`routing.errors`) carry their own status and reason; upstream failures
(`providers.errors`) map by their `http_status`, with a reason per class (`UPSTREAM_REASONS`).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from providers.errors import (
    MidStreamError,
    UpstreamBadRequest,
    UpstreamConnectError,
    UpstreamContextExceeded,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamReset,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from routing.errors import RoutingError
from routing.executor import GenerationFailed

log = logging.getLogger("gateway.errors")
_encode = msgspec.json.Encoder(decimal_format="number").encode


class GatewayError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}
        self.headers = headers or {}


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"


class PaymentRequired(GatewayError):
    status = 402
    code = "insufficient_credits"


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"


class NoEndpointAvailable(GatewayError):
    status = 503
    code = "no_endpoint_available"


# The reason of an upstream failure, most specific class first.
UPSTREAM_REASONS: tuple[tuple[type[UpstreamError], str], ...] = (
    (UpstreamContextExceeded, "context_length_exceeded"),
    (UpstreamBadRequest, "upstream_bad_request"),
    (UpstreamRateLimited, "upstream_rate_limited"),
    (UpstreamRejected, "upstream_rejected"),
    (UpstreamServerError, "upstream_error"),
    (UpstreamTimeout, "upstream_timeout"),
    (UpstreamConnectError, "upstream_connect_error"),
    (UpstreamReset, "upstream_reset"),
    (UpstreamProtocolError, "upstream_protocol_error"),
    (UpstreamUnavailable, "upstream_unavailable"),
    (MidStreamError, "upstream_mid_stream"),
)
# The reason of an error Litestar raised itself (unknown route, wrong method, body too large).
STATUS_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
}


def error_object(
    status: int, message: str, reason: str | None = None, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The `error` member of the envelope; `metadata.reason` comes first."""
    return {
        "code": status,
        "message": message,
        "type": error_type(status),
        "metadata": {"reason": reason or reason_for_status(status), **(metadata or {})},
    }


def error_body(
    status: int, message: str, reason: str | None = None, metadata: dict[str, Any] | None = None
) -> bytes:
    """The whole error body: `{"error": {"code", "message", "type", "metadata"}}`."""
    return _encode({"error": error_object(status, message, reason, metadata)})


def reason_for_status(status: int) -> str:
    return STATUS_REASONS.get(status, f"http_{status}")


def upstream_reason(exc: UpstreamError) -> str:
    for cls, reason in UPSTREAM_REASONS:
        if isinstance(exc, cls):
            return reason
    return "upstream_error"


def error_type(status: int) -> str:
    """OpenAI's error `type` for a status."""
    if status in (401, 403):
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_response(exc: Exception) -> Response[bytes]:
    """Map any exception to its response; only 5xx are logged with a traceback."""
    headers: dict[str, str] = {}
    reason: str
    if isinstance(exc, GenerationFailed):
        headers.update(exc.headers)
        exc = exc.last
    if isinstance(exc, GatewayError | RoutingError):
        status, reason, message, metadata = exc.status, exc.code, exc.message, exc.metadata
        headers = getattr(exc, "headers", {})
    elif isinstance(exc, UpstreamError):
        status, reason, message = exc.http_status, upstream_reason(exc), exc.message
        metadata = {"error_class": type(exc).__name__}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(int(exc.retry_after + 0.999), 1))
    elif isinstance(exc, HTTPException):
        status, message, metadata = exc.status_code, exc.detail, {}
        reason = reason_for_status(status)
        if status == 413:
            message = "request body is larger than the configured limit"
        headers = dict(exc.headers or {})
    else:
        status, reason, message, metadata = 500, "internal_error", "internal error", {}
    if status >= 500 and not isinstance(exc, UpstreamError | RoutingError | NoEndpointAvailable):
        log.error("unhandled error", exc_info=exc)
    return Response(
        error_body(status, message, reason, metadata),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def handle_exception(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return error_response(exc)
