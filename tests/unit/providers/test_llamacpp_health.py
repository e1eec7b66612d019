"""Reading llama-server's /health, /props, /slots and /metrics into availability."""

from __future__ import annotations

import pytest

from providers.catalog import Endpoint, Price
from providers.llamacpp_health import (
    ServerState,
    _timed_out,
    busy_from_metrics,
    busy_from_slots,
    health_of,
    props_of,
    server_root,
    unavailable_reason,
)

LOADING = {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}
METRICS = """# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""


def test_health_ok_is_ready_and_503_is_loading() -> None:
    assert health_of(200, {"status": "ok"}) == ("ready", "")
    assert health_of(503, LOADING) == ("loading", "Loading model")
    assert health_of(500, None) == ("down", "/health answered 500")


def test_props_give_slots_and_context_per_slot() -> None:
    props = {"total_slots": 4, "default_generation_settings": {"n_ctx": 32768}}
    assert props_of(props) == (4, 32768)
    assert props_of({"total_slots": "x"}) == (None, None)


def test_slots_and_metrics_count_busy_slots() -> None:
    slots = [{"id": 0, "is_processing": True}, {"id": 1, "is_processing": False}]
    assert busy_from_slots(slots) == (1, 2)
    assert busy_from_slots({"error": "nope"}) is None
    assert busy_from_metrics(METRICS) == (2, 1)
    assert busy_from_metrics("llamacpp:prompt_tokens_total 10\n") is None


@pytest.mark.parametrize(
    ("state", "spill_over", "reason"),
    [
        (ServerState("unknown"), True, None),  # not yet checked: don't hold it back
        (ServerState("ready", total_slots=2, busy_slots=1), True, None),
        (
            ServerState("ready", total_slots=2, busy_slots=2),
            True,
            "every slot is busy (2/2)",
        ),
        (ServerState("ready", total_slots=2, busy_slots=2), False, None),  # queue instead
        (ServerState("ready", busy_slots=1, deferred=3), True, "every slot is busy, 3 waiting"),
        (ServerState("loading", "Loading model"), False, "the server is loading the model"),
        (ServerState("down", "unreachable: X"), False, "the server is down (unreachable: X)"),
        (ServerState("ready", busy_slots=5), True, None),  # slot count unknown
    ],
)
def test_unavailable_reason(state: ServerState, spill_over: bool, reason: str | None) -> None:
    assert unavailable_reason(state, spill_over) == reason


def test_a_ready_server_too_busy_to_report_counts_as_saturated() -> None:
    ready = ServerState("ready", total_slots=2, busy_slots=0)
    assert _timed_out(ready, 2.0).saturated
    assert _timed_out(ServerState("unknown"), 2.0).status == "down"


def test_server_root_strips_v1() -> None:
    def at(url: str) -> Endpoint:
        return Endpoint(
            model="m",
            provider="local",
            base_url=url,
            upstream_model="m",
            context_length=1,
            price=Price(),
        )

    assert server_root(at("http://127.0.0.1:8080/v1/")) == "http://127.0.0.1:8080"
    assert server_root(at("http://llama:8080")) == "http://llama:8080"
