"""Client-facing errors and the one place any failure becomes the error envelope.

    {"error": {"code": <HTTP status>, "message", "type": <OpenAI type>,
               "metadata": {"reason": <string code>, ...}}}

    GatewayError                 client_status   code (metadata.reason)
    ├── BadRequest               400             bad_request
    ├── Unauthorized             401             unauthorized
    ├── PaymentRequired          402             insufficient_credits
    ├── Forbidden                403             forbidden
    ├── NotFound                 404             not_found
    ├── PayloadTooLarge          413             payload_too_large
    ├── UnsupportedMediaType     415             unsupported_media_type
    ├── RateLimited              429             rate_limited
    └── GenerationError          the last upstream error's: routing's `GenerationFailed`,
                                 wrapped with the headers that name the generation
Routing errors (`routing.errors`) and upstream failures (`providers.errors`) speak the same
words (`client_status`, `code`, `message`, `metadata`; an upstream's own status is
`upstream_status`), so one branch maps them all.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from providers.errors import UpstreamError
from routing.attempts import GenerationFailed
from routing.errors import RoutingError

log = logging.getLogger("gateway.errors")
_encode = msgspec.json.Encoder(decimal_format="number").encode


class GatewayError(Exception):
    client_status = 500
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
    client_status = 400
    code = "bad_request"


class Unauthorized(GatewayError):
    client_status = 401
    code = "unauthorized"


class PaymentRequired(GatewayError):
    client_status = 402
    code = "insufficient_credits"


class Forbidden(GatewayError):
    client_status = 403
    code = "forbidden"


class NotFound(GatewayError):
    client_status = 404
    code = "not_found"


class PayloadTooLarge(GatewayError):
    client_status = 413
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    client_status = 415
    code = "unsupported_media_type"


class RateLimited(GatewayError):
    client_status = 429
    code = "rate_limited"


class GenerationError(GatewayError):
    """A generation whose every attempt failed, as its client is told: the last upstream
    error's status, reason and message, the generation's headers (and its Retry-After)."""

    def __init__(self, failed: GenerationFailed, headers: dict[str, str]) -> None:
        last = failed.last
        super().__init__(last.message, metadata=last.metadata, headers=headers)
        self.failed = failed
        self.client_status = last.client_status
        self.code = last.code
        if last.retry_after is not None:
            self.headers["Retry-After"] = retry_after_header(last.retry_after)


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


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1."""
    return str(max(int(seconds + 0.999), 1))


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
    if isinstance(exc, GenerationFailed):  # not wrapped by the gateway: no generation headers
        exc = GenerationError(exc, {})
    headers: dict[str, str] = {}
    reason: str
    if isinstance(exc, GatewayError | RoutingError | UpstreamError):
        status, reason, message = exc.client_status, exc.code, exc.message
        metadata = exc.metadata
        if isinstance(exc, GatewayError):
            headers = exc.headers
        elif isinstance(exc, UpstreamError) and exc.retry_after is not None:
            headers["Retry-After"] = retry_after_header(exc.retry_after)
    elif isinstance(exc, HTTPException):
        status, message, metadata = exc.status_code, exc.detail, {}
        reason = reason_for_status(status)
        if status == 413:
            message = "request body is larger than the configured limit"
        headers = dict(exc.headers or {})
    else:
        status, reason, message, metadata = 500, "internal_error", "internal error", {}
    expected = isinstance(exc, UpstreamError | RoutingError | GenerationError)
    if status >= 500 and not expected:
        log.error("unhandled error", exc_info=exc)
    return Response(
        error_body(status, message, reason, metadata),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def handle_exception(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return error_response(exc)
