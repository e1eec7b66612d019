"""The wire form of a generation event: JSON via msgspec, money as decimal strings.

Used by the Redis stream and by dead letters; exact both ways (Decimal in, same Decimal out).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.ledger.events import GenerationEvent

EVENT_VERSION = 1


class EventDecodeError(ValueError):
    """Bytes that are not a generation event of a version this code reads."""


def _fallback(value: Any) -> Any:
    # Routing explanations are free-form; an odd value there must never fail a request.
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_fallback, decimal_format="string")
_decoder = msgspec.json.Decoder(GenerationEvent)


def encode_event(event: GenerationEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> GenerationEvent:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise EventDecodeError(str(exc)) from exc
