"""The wire form of an event round-trips exactly, money included."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ledger.codec import EventDecodeError, decode_event, encode_event
from providers.pricing import Cost
from tests.unit.gateway.ledger.factories import make_event

money = st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=12)


def test_round_trip_keeps_every_field() -> None:
    event = make_event()
    back = decode_event(encode_event(event))
    assert back.usage == event.usage and back.cost == event.cost
    assert back.attempts == event.attempts
    assert back.created_at == event.created_at and back.created_at.tzinfo is not None
    assert back.explanation == {"scores": {"groq": "0.5"}}  # free-form: plain JSON values


@given(prompt=money, completion=money, discount=money)
def test_money_survives_exactly(prompt: Decimal, completion: Decimal, discount: Decimal) -> None:
    event = make_event(cost=Cost(prompt, completion, Decimal(0), discount))
    assert decode_event(encode_event(event)).cost == event.cost


def test_money_is_sent_as_strings_never_floats() -> None:
    assert b'"prompt":"0.0000744"' in encode_event(make_event())


def test_an_odd_value_in_the_explanation_never_fails_the_request() -> None:
    event = make_event(explanation={"thing": object()})
    assert "object" in decode_event(encode_event(event)).explanation["thing"]


@pytest.mark.parametrize("data", [b"{not json", b'{"id": 1}', b"[]"])
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(data)
