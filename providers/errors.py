"""Upstream failure classes: what went wrong on one attempt and what that means.

Each class says whether the same endpoint may be retried, whether another endpoint may
serve instead, whether it counts against the endpoint's uptime, and the client-facing status.

    UpstreamError
    ├── UpstreamTransportError         no usable HTTP answer
    │   ├── UpstreamConnectError       connect refused / DNS / TLS        retry, fallback, uptime
    │   ├── UpstreamTimeout            connect, first-token or total      retry, fallback, uptime
    │   └── UpstreamReset              connection dropped before headers  retry, fallback, uptime
    ├── UpstreamStatusError            upstream answered with an error status
    │   ├── UpstreamRateLimited        429 (+ Retry-After)                retry, fallback, rate
    │   ├── UpstreamServerError        5xx                                retry, fallback, uptime
    │   ├── UpstreamRejected           401/402/403/404: its key or model  fallback, uptime
    │   └── UpstreamBadRequest         400/413/422: the client's fault    final, passed on
    │       └── UpstreamContextExceeded   the prompt is too long for it  a longer context only
    ├── UpstreamProtocolError          invalid JSON, malformed stream     retry, fallback, uptime
    ├── UpstreamUnavailable            loading, all slots busy, breaker   fallback, not uptime
    └── MidStreamError                 failed after the first byte        final, uptime

`answered` (per instance) overrides `retryable`: the failure came after the upstream's answer
had started (a body cut after the status line, a stall mid-body, a bad 200 body), so it may have
generated and billed the request; the same endpoint is never sent it again (another may be).
"""

from __future__ import annotations

from typing import Any, ClassVar


class UpstreamError(Exception):
    """One attempt failed. Class attributes carry the policy; instances carry the detail."""

    retryable: ClassVar[bool] = False
    fallback: ClassVar[bool] = True
    counts_against_uptime: ClassVar[bool] = True
    rate_limited: ClassVar[bool] = False
    client_status: ClassVar[int] = 502
    outcome: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.answered = False  # set where the transport says the answer had started

    @property
    def http_status(self) -> int:
        """The status the client gets when this is the generation's final failure."""
        return self.client_status


class UpstreamTransportError(UpstreamError):
    retryable = True


class UpstreamConnectError(UpstreamTransportError):
    outcome = "connect"


class UpstreamTimeout(UpstreamTransportError):
    client_status = 408
    outcome = "timeout"


class UpstreamReset(UpstreamTransportError):
    outcome = "reset"


class UpstreamStatusError(UpstreamError):
    outcome = "http"


class UpstreamRateLimited(UpstreamStatusError):
    retryable = True
    counts_against_uptime = False
    rate_limited = True
    client_status = 429


class UpstreamServerError(UpstreamStatusError):
    retryable = True


class UpstreamRejected(UpstreamStatusError):
    """The upstream refused our credentials, billing or model name: another may serve."""


class UpstreamBadRequest(UpstreamStatusError):
    """The request itself is wrong; every provider would refuse it."""

    fallback = False
    counts_against_uptime = False
    client_status = 400

    @property
    def http_status(self) -> int:
        return self.status or self.client_status


class UpstreamContextExceeded(UpstreamBadRequest):
    """The prompt (plus the answer) doesn't fit this endpoint's context: only an endpoint with a
    longer context may serve it (e.g. the next model of `models`)."""

    outcome = "context_length"


# How upstreams say "too long" (OpenAI/Groq code, llama.cpp's type, common message wording).
CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
CONTEXT_WORDS = ("context length", "context_length", "context size", "context window")


def _context_exceeded(message: str, body: Any) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and (
        err.get("code") in CONTEXT_CODES or err.get("type") in CONTEXT_CODES
    ):
        return True
    text = message.lower()
    return any(words in text for words in CONTEXT_WORDS)


class UpstreamProtocolError(UpstreamError):
    retryable = True
    outcome = "protocol"


class UpstreamUnavailable(UpstreamError):
    """Not failing, just not able to take this request now (loading, saturated, breaker open)."""

    counts_against_uptime = False
    client_status = 503
    outcome = "unavailable"


class MidStreamError(UpstreamError):
    """The stream broke after bytes reached the client: it can only be ended, not retried."""

    fallback = False
    outcome = "mid_stream"


def error_for_status(
    status: int, message: str, *, retry_after: float | None = None, body: Any = None
) -> UpstreamError:
    """Classify an upstream HTTP error status."""
    cls: type[UpstreamError]
    if status == 429:
        cls = UpstreamRateLimited
    elif status >= 500:
        cls = UpstreamServerError
    elif status in (400, 413, 422):
        cls = UpstreamContextExceeded if _context_exceeded(message, body) else UpstreamBadRequest
    else:
        cls = UpstreamRejected
    return cls(message, status=status, retry_after=retry_after, body=body)
