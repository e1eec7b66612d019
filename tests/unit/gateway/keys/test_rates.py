"""GCRA arithmetic: N per minute at once, then one every 60/N s; token buckets run into debt."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.keys.rates import WINDOW_US, check_requests, check_tokens, spend_tokens

NOW = 1_700_000_000_000_000


@given(st.integers(min_value=1, max_value=2_000))
def test_a_burst_of_exactly_the_limit_passes_and_the_next_waits_one_step(per_minute: int):
    tat = None
    for i in range(per_minute):
        checked = check_requests(tat, NOW, per_minute)
        assert checked.retry_after_us == 0, i
        assert checked.remaining == per_minute - i - 1
        tat = checked.tat_us
    refused = check_requests(tat, NOW, per_minute)
    assert 0 < refused.retry_after_us <= WINDOW_US // per_minute
    assert refused.remaining == 0


def test_after_the_wait_one_more_request_passes():
    tat = None
    for _ in range(3):
        tat = check_requests(tat, NOW, 3).tat_us
    refused = check_requests(tat, NOW, 3)
    assert refused.retry_after_us == 20_000_000
    assert check_requests(tat, NOW + 20_000_000, 3).retry_after_us == 0
    assert check_requests(tat, NOW + 19_999_999, 3).retry_after_us == 1


def test_tokens_refuse_only_when_overdrawn():
    assert check_tokens(None, NOW, 100).remaining == 100
    tat = spend_tokens(None, NOW, 100, 60)
    assert check_tokens(tat, NOW, 100).remaining == 40
    tat = spend_tokens(tat, NOW, 100, 90)  # 150 of 100: a debt of half a minute
    refused = check_tokens(tat, NOW, 100)
    assert refused.retry_after_us == 30_000_000
    assert check_tokens(tat, NOW + 30_000_001, 100).retry_after_us == 0
