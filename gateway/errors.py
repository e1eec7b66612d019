"""Client-facing errors and the one place any failure becomes an OpenAI-shaped error body.

    GatewayError                 status   code
    ├── BadRequest               400      bad_request
    ├── Unauthorized             401      unauthorized
    ├── PaymentRequired          402      insufficient_credits
    ├── Forbidden                403      forbidden
    ├── NotFound                 404      not_found
    ├── PayloadTooLarge          413      payload_too_large
    ├── UnsupportedMediaType     415      unsupported_media_type
    ├── RateLimited              429      rate_limited
    └── NoEndpointAvailable      503      no_endpoint_available
Upstream failures (`providers.errors`) map by their own `http_status`.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from providers.errors import UpstreamError
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


def error_body(
    status: int, message: str, code: str | int | None = None, metadata: dict[str, Any] | None = None
) -> bytes:
    """The OpenAI/OpenRouter error shape: `{"error": {"code", "message", "metadata"}}`."""
    return _encode(
        {
            "error": {
                "code": code if code is not None else status,
                "message": message,
                "type": _type_for(status),
                "metadata": metadata or {},
            }
        }
    )


def _type_for(status: int) -> str:
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
    code: str | int
    if isinstance(exc, GenerationFailed):
        headers.update(exc.headers)
        exc = exc.last
    if isinstance(exc, GatewayError | RoutingError):
        status, code, message, metadata = exc.status, exc.code, exc.message, exc.metadata
        headers = getattr(exc, "headers", {})
    elif isinstance(exc, UpstreamError):
        status, code, message = exc.http_status, exc.http_status, exc.message
        metadata = {"error_class": type(exc).__name__}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(int(exc.retry_after + 0.999), 1))
    elif isinstance(exc, HTTPException):
        status, code, message, metadata = exc.status_code, exc.status_code, exc.detail, {}
        if status == 413:
            code = PayloadTooLarge.code
            message = "request body is larger than the configured limit"
        headers = dict(exc.headers or {})
    else:
        status, code, message, metadata = 500, "internal_error", "internal error", {}
    if status >= 500 and not isinstance(exc, UpstreamError | RoutingError | NoEndpointAvailable):
        log.error("unhandled error", exc_info=exc)
    return Response(
        error_body(status, message, code, metadata),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def handle_exception(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return error_response(exc)
