"""OpenAI chat-completions wire shapes the simulator reads and writes, as bytes.

Decoding of client bodies and encoding of completions, stream chunks and errors; no timing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from providers.simulator.outcome import Reply
from providers.simulator.protocol import Exchange

_encode = msgspec.json.Encoder().encode
DONE_EVENT = b"data: [DONE]\n\n"


class ContentPart(msgspec.Struct):
    type: str = "text"
    text: str = ""


class Message(msgspec.Struct):
    role: str
    content: str | list[ContentPart] | None = None


class WireRequest(msgspec.Struct):
    """The fields the simulator acts on; every other field is accepted and ignored."""

    model: str
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    stream: bool | None = False
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None

    def token_budget(self, alias: str = "max_completion_tokens") -> int | None:
        """Completion tokens allowed (reasoning included); `alias` wins when both are given."""
        if alias == "max_tokens":
            return self.max_tokens or self.max_completion_tokens
        return self.max_completion_tokens or self.max_tokens

    def prompt_text(self) -> str:
        """The concatenated message text that tokens are counted (and cached) over."""
        parts: list[str] = []
        for message in self.messages:
            if isinstance(message.content, str):
                parts.append(message.content)
            elif message.content is not None:
                parts.extend(part.text for part in message.content)
        return "".join(parts)


decode_chat_request = msgspec.json.Decoder(WireRequest).decode


def error_body(message: str, type_: str, code: str | None) -> bytes:
    """An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`."""
    return _encode({"error": {"message": message, "type": type_, "param": None, "code": code}})


def send_error(
    exchange: Exchange,
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Answer with an OpenAI error; its `type` follows the status as OpenAI's does."""
    if status == 401:
        type_ = "authentication_error"
    elif status == 429:
        type_ = "rate_limit_error"
    elif status >= 500:
        type_ = "server_error"
    else:
        type_ = "invalid_request_error"
    exchange.respond(status, error_body(message, type_, code), headers=headers)


def send_not_allowed(exchange: Exchange, allow: str) -> None:
    send_error(
        exchange, 405, "method not allowed", code="method_not_allowed", headers=[("allow", allow)]
    )


def json_body(value: Any) -> bytes:
    return _encode(value)


def usage(plan: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
    }


def timings(plan: Reply) -> dict[str, Any]:
    """llama.cpp's `timings` object, for profiles that imitate llama-server."""
    predicted_ms = plan.completion_tokens * plan.token_interval_s * 1000
    return {
        "cache_n": plan.cached_tokens,
        "prompt_n": plan.prompt_tokens - plan.cached_tokens,
        "prompt_ms": plan.ttft_s * 1000,
        "predicted_n": plan.completion_tokens,
        "predicted_ms": predicted_ms,
        "predicted_per_second": (
            plan.completion_tokens / predicted_ms * 1000 if predicted_ms > 0 else 0.0
        ),
    }


class Rendering:
    """Bodies and stream events of one successful generation in OpenAI shape."""

    __slots__ = ("_chunk_head", "_created", "_id", "_model", "_plan", "_timings")

    def __init__(
        self, ident: str, created: int, model: str, plan: Reply, *, llamacpp_timings: bool
    ) -> None:
        self._id = ident
        self._created = created
        self._model = model
        self._plan = plan
        self._timings = llamacpp_timings
        self._chunk_head = b""

    def completion(self) -> bytes:
        plan = self._plan
        message: dict[str, Any] = {"role": "assistant", "content": plan.content}
        if plan.reasoning:
            message["reasoning"] = plan.reasoning
        body: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion",
            "created": self._created,
            "model": self._model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                }
            ],
            "usage": usage(plan),
        }
        if self._timings:
            body["timings"] = timings(plan)
        return _encode(body)

    def chunk(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        running: dict[str, Any] | None = None,
    ) -> bytes:
        """One SSE event carrying a delta (and a running `usage`, when given)."""
        if not self._chunk_head:  # every chunk starts alike: encode that part once
            head = {"id": self._id, "object": "chat.completion.chunk", "created": self._created}
            self._chunk_head = self._event(head)[: -len(b"}\n\n")]
            self._chunk_head += b',"model":' + _encode(self._model)
        choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        tail = b"" if running is None else b',"usage":' + _encode(running)
        return self._chunk_head + b',"choices":' + _encode(choices) + tail + b"}\n\n"

    def running_usage(self, completion_tokens: int) -> dict[str, Any]:
        """The usage so far, as vLLM's `continuous_usage_stats` puts on every chunk."""
        prompt = self._plan.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }

    def usage_chunk(self) -> bytes:
        """The last data event: empty `choices` and the usage, as with `include_usage`."""
        body: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": usage(self._plan),
        }
        if self._timings:
            body["timings"] = timings(self._plan)
        return self._event(body)

    @staticmethod
    def _event(body: dict[str, Any]) -> bytes:
        return b"data: " + _encode(body) + b"\n\n"
