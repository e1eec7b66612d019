"""Transport failures become `providers.errors` classes in one place; SSE lines split right."""

from __future__ import annotations

import pytest

from providers.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from providers.http1 import ConnectFailed, ConnectionClosed, MalformedResponse, Timeout, TooLarge
from providers.openai_compatible import upstream_errors
from providers.sse import MAX_LINE, SseData, SseError


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ConnectFailed("refused"), UpstreamConnectError),
        (ConnectionClosed("reset"), UpstreamReset),
        (ConnectionResetError(), UpstreamReset),
        (Timeout("connect", 1), UpstreamTimeout),
        (Timeout("headers", 1), UpstreamTimeout),
        (Timeout("total", 1), UpstreamTimeout),
        (Timeout("pool", 1), UpstreamTimeout),
        (TimeoutError(), UpstreamTimeout),
        (MalformedResponse("garbage"), UpstreamProtocolError),
        (SseError("long line"), UpstreamProtocolError),
    ],
)
def test_each_transport_failure_has_its_class(
    raised: Exception, expected: type[UpstreamError]
) -> None:
    with pytest.raises(expected) as info, upstream_errors("prov", "http://up"):
        raise raised
    assert info.value.__cause__ is raised
    assert info.value.message.startswith("prov: ")


def test_sse_payloads_are_split_across_chunk_boundaries() -> None:
    events = SseData()
    assert events.feed(b'data: {"a"') == []
    assert events.feed(b":1}\r\n\r\n: comment\nevent: x\ndata:[DONE]") == [b'{"a":1}']
    assert events.feed(b"\n\ndata: 1\n\ndata: 2\n\n") == [b"[DONE]", b"1", b"2"]
    assert events.feed(b"data: tail") == []
    assert events.flush() == [b"tail"]


def test_a_line_without_end_is_not_an_event_stream() -> None:
    events = SseData()
    with pytest.raises(SseError):
        for _ in range(MAX_LINE // 1000 + 2):
            events.feed(b"x" * 1000)


def _received(error: Exception, status: int = 200) -> Exception:
    error.received, error.status = True, status  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("raised", "expected", "answered"),
    [
        (ConnectionClosed("reset"), UpstreamReset, False),
        (_received(ConnectionClosed("cut")), UpstreamReset, True),
        (_received(Timeout("idle", 1)), UpstreamTimeout, True),
        (_received(TooLarge("gzip bomb")), UpstreamProtocolError, True),
        (_received(TooLarge("header flood"), status=0), UpstreamProtocolError, True),
        (Timeout("headers", 1), UpstreamTimeout, False),
        (SseError("long line"), UpstreamProtocolError, True),
    ],
)
def test_a_failure_after_the_answer_started_is_answered(
    raised: Exception, expected: type[UpstreamError], answered: bool
) -> None:
    with pytest.raises(expected) as info, upstream_errors("prov", "http://up"):
        raise raised
    assert info.value.answered is answered
    assert info.value.upstream_status == (getattr(raised, "status", 0) or None)
    assert ("not sent to it again" in info.value.message) is (
        answered and not isinstance(raised, SseError)
    )
