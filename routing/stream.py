"""The serving attempt's stream once its first chunk has arrived: it owns the attempt's ending.

Iterating to the end, an upstream error or `aclose()` records the attempt exactly once (through
the callback the executor gave it); there is no separate "finish" call to forget. Not pricing:
what the generation is charged is the chat service's, from what this object saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from providers.catalog import Endpoint
from providers.errors import UpstreamError
from providers.provider import Chunk
from providers.usage import Usage
from routing.attempts import Attempt, Skip

StreamEnd = Literal["ok", "error", "cancelled"]
# Delta fields whose text is output the upstream bills (llama.cpp's `reasoning_content` is
# renamed by its adapter; both names are read so the count never depends on the adapter).
_TEXT_FIELDS = frozenset({"content", "reasoning", "reasoning_content"})


class OpenedStream:
    """A stream whose first chunk has arrived: from here on there is no fallback.

    Iterate it for the chunks (the first one included). While it runs it keeps the upstream's
    largest reported `usage` (continuous usage stats put a running total on every chunk), the
    first native finish reason, and the text of the deltas handed out, for pricing an answer
    the upstream never reported usage for.
    """

    __slots__ = (
        "_first",
        "_on_end",
        "_rest",
        "attempts",
        "carried_output",
        "ended",
        "endpoint",
        "error",
        "native_finish_reason",
        "skipped",
        "started",
        "text",
        "ttft_s",
        "usage",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        first: Chunk,
        rest: AsyncIterator[Chunk],
        attempts: list[Attempt],
        started: float,
        ttft_s: float,
        on_end: Callable[[OpenedStream], None],
        skipped: list[Skip] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.attempts = attempts
        self.skipped = skipped or []
        self.started = started  # monotonic start of the serving attempt
        self.ttft_s = ttft_s
        self.usage: Usage | None = None
        self.native_finish_reason: Any = None
        self.text: list[str] = []
        self.carried_output = False  # whether the last chunk handed out had output text
        self.ended: StreamEnd | None = None
        self.error: UpstreamError | None = None
        self._first: Chunk | None = first
        self._rest = rest
        self._on_end = on_end

    def __aiter__(self) -> OpenedStream:
        return self

    async def __anext__(self) -> Chunk:
        chunk = self._first
        if chunk is not None:
            self._first = None
        elif self.ended is not None:
            raise StopAsyncIteration
        else:
            try:
                chunk = await anext(self._rest)
            except StopAsyncIteration:
                self._end("ok", None)
                raise
            except UpstreamError as exc:
                self._end("error", exc)
                raise
        before = len(self.text)
        self._read(chunk)
        self.carried_output = len(self.text) > before
        return chunk

    async def aclose(self) -> None:
        """Stop reading: an attempt not yet ended is recorded as cancelled, then the upstream
        connection is closed. Safe to call at any time, any number of times."""
        if self.ended is None:
            self._end("cancelled", None)
        await self._rest.aclose()  # type: ignore[attr-defined]

    @property
    def completion_text(self) -> str:
        """The output text handed out so far (content and reasoning deltas)."""
        return "".join(self.text)

    def _read(self, chunk: Chunk) -> None:
        usage = chunk.usage
        if usage is not None:
            known = self.usage
            if known is None or (usage.completion_tokens, usage.prompt_tokens) >= (
                known.completion_tokens,
                known.prompt_tokens,
            ):
                self.usage = usage
        choices = chunk.data.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if delta and isinstance(delta, dict):
                for name, value in delta.items():  # a delta has a field or two: no lookups
                    if name in _TEXT_FIELDS:
                        if value and isinstance(value, str):
                            self.text.append(value)
                    elif name == "tool_calls" and isinstance(value, list):
                        self._tool_text(value)
            if self.native_finish_reason is None:
                self.native_finish_reason = choice.get("finish_reason")

    def _tool_text(self, calls: list[Any]) -> None:
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for name in ("name", "arguments"):
                    text = function.get(name)
                    if isinstance(text, str) and text:
                        self.text.append(text)

    def _end(self, how: StreamEnd, error: UpstreamError | None) -> None:
        self.ended, self.error = how, error
        self._on_end(self)
