"""Server-sent events as upstreams send them: the `data:` payloads out of raw body chunks.

Only splitting; what a payload means is the adapter's business.
"""

from __future__ import annotations

MAX_LINE = 1024 * 1024  # a longer line is not an event stream we understand


class SseError(ValueError):
    """The body is not an event stream (a line past `MAX_LINE`)."""


class SseData:
    """Feed body chunks in arrival order; get each complete `data:` line's payload."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._rest:
            chunk = self._rest + chunk
        lines = chunk.split(b"\n")
        self._rest = lines.pop()  # an unfinished line waits for the next chunk
        if len(self._rest) > MAX_LINE:
            raise SseError(f"event stream line longer than {MAX_LINE} bytes")
        return [line[5:].strip() for line in lines if line.startswith(b"data:")]

    def flush(self) -> list[bytes]:
        """The last line, when the body ended without a line break."""
        rest, self._rest = self._rest, b""
        return [rest[5:].strip()] if rest.startswith(b"data:") else []
