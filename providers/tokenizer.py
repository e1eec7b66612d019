"""Counting gpt-oss tokens locally (o200k, gpt-oss's o200k_harmony without its special tokens),
for an answer whose upstream never reported usage. Not on the normal request path: ~60 µs/KB.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# What the harmony chat template adds around each message (`<|start|>role<|message|>...<|end|>`)
# and once per prompt (the system preamble gpt-oss always gets, and the assistant's start).
MESSAGE_TOKENS = 4
PROMPT_TOKENS = 64


@cache
def _encoding() -> Any:
    import bpe_openai  # ~0.5 s: paid by `warm()` at start, not by commands that never count

    return bpe_openai.get_encoding("o200k_base")


def warm() -> None:
    """Load the tokenizer now (blocking, ~0.5 s): call it off the event loop at start, so the
    first answer that needs a count doesn't stall every other request."""
    _encoding()


def count_tokens(text: str) -> int:
    """o200k tokens of plain text (special-token look-alikes counted as ordinary text)."""
    if not text:
        return 0
    return len(_encoding().encode_ordinary(text))


def prompt_tokens(messages: Any) -> int:
    """The prompt a chat request's messages make, counted with the template's overhead."""
    if not isinstance(messages, list):
        return PROMPT_TOKENS
    total = PROMPT_TOKENS
    for message in messages:
        total += MESSAGE_TOKENS
        if isinstance(message, dict):
            total += count_tokens(_text_of(message.get("content")))
            total += count_tokens(_text_of(message.get("reasoning")))
    return total


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
