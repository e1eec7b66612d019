"""Upstream failure classes: what went wrong on one attempt and what that means.

Each class says whether the same endpoint may be retried, whether another endpoint may
serve instead, whether it counts against the endpoint's uptime, the status the client gets
(`client_status`) and the envelope's reason (`code`); an instance carries the status the
upstream sent (`upstream_status`, None when it sent none), `message` and `metadata`. The same
five words mean the same on routing's and the gateway's errors.

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
    outcome: ClassVar[str] = "error"
    code: ClassVar[str] = "upstream_error"  # the envelope's `metadata.reason`
    _client_status: ClassVar[int] = 502

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body
        self.answered = False  # set where the transport says the answer had started

    @property
    def client_status(self) -> int:
        """The status the client gets when this is the generation's final failure."""
        return self._client_status

    @property
    def metadata(self) -> dict[str, Any]:
        return {"error_class": type(self).__name__}


class UpstreamTransportError(UpstreamError):
    retryable = True


class UpstreamConnectError(UpstreamTransportError):
    outcome = "connect"
    code = "upstream_connect_error"


class UpstreamTimeout(UpstreamTransportError):
    _client_status = 408
    outcome = "timeout"
    code = "upstream_timeout"


class UpstreamReset(UpstreamTransportError):
    outcome = "reset"
    code = "upstream_reset"


class UpstreamStatusError(UpstreamError):
    outcome = "http"


class UpstreamRateLimited(UpstreamStatusError):
    retryable = True
    counts_against_uptime = False
    rate_limited = True
    _client_status = 429
    code = "upstream_rate_limited"


class UpstreamServerError(UpstreamStatusError):
    retryable = True


class UpstreamRejected(UpstreamStatusError):
    """The upstream refused our credentials, billing or model name: another may serve."""

    code = "upstream_rejected"


class UpstreamBadRequest(UpstreamStatusError):
    """The request itself is wrong; every provider would refuse it."""

    fallback = False
    counts_against_uptime = False
    _client_status = 400
    code = "upstream_bad_request"

    @property
    def client_status(self) -> int:
        """The upstream's own 4xx is passed on (413, 422), else 400."""
        return self.upstream_status or self._client_status


class UpstreamContextExceeded(UpstreamBadRequest):
    """The prompt (plus the answer) doesn't fit this endpoint's context: only an endpoint with a
    longer context may serve it (e.g. the next model of `models`)."""

    outcome = "context_length"
    code = "context_length_exceeded"


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
    code = "upstream_protocol_error"


class UpstreamUnavailable(UpstreamError):
    """Not failing, just not able to take this request now (loading, saturated, breaker open)."""

    counts_against_uptime = False
    _client_status = 503
    outcome = "unavailable"
    code = "upstream_unavailable"


class MidStreamError(UpstreamError):
    """The stream broke after bytes reached the client: it can only be ended, not retried."""

    fallback = False
    outcome = "mid_stream"
    code = "upstream_mid_stream"


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
    return cls(message, upstream_status=status, retry_after=retry_after, body=body)
