"""A generation id tells the lookup which days (partitions) to read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.generations.queries import created_window


def test_window_surrounds_the_second_in_the_id() -> None:
    low, high = created_window("gen-1741964966-abcdef") or (None, None)
    moment = datetime.fromtimestamp(1741964966, UTC)
    assert low == moment - timedelta(days=1) and high == moment + timedelta(days=1)


def test_other_shapes_read_everything() -> None:
    assert created_window("gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG") is None
    assert created_window("gen-12-abc") is None
    assert created_window("nope") is None
