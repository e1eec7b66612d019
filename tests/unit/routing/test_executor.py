"""The executor: retries, fallback, Retry-After, the attempt budget, breakers, streams. No I/O."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.errors import (
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamReset,
    UpstreamServerError,
    UpstreamTimeout,
)
from providers.provider import Chunk, Timeouts
from routing.affinity import AffinityMemory
from routing.breaker import Breakers, BreakerState
from routing.executor import Executor, GenerationFailed, RetryPolicy
from routing.planner import Planner
from routing.preferences import MaxPrice, ProviderPreferences, RouteRequest
from routing.scoring import RoutingPolicy
from tests.unit.routing.fakes import (
    MODEL,
    FakeSleep,
    Script,
    ScriptedProvider,
    catalog,
    cheapest_first,
    endpoint,
)

NOW = 1_700_000_000.0


class Gate:
    """A breaker gate over local `Breakers`, probes always won unless told otherwise."""

    def __init__(self, *states: BreakerState, win_probe: bool = True) -> None:
        self.breakers = Breakers()
        self.breakers.merge({s.endpoint_id: s for s in states})
        self.win_probe = win_probe
        self.claims: list[str] = []

    def phase(self, endpoint_id: str, now: float):
        state = self.breakers.get(endpoint_id)
        return ("closed", 0.0) if state is None else (state.phase(now), state.until)

    async def claim_probe(self, endpoint_id: str, now: float) -> bool:
        self.claims.append(endpoint_id)
        return self.win_probe


def setup(cat, script: Script, *, gate=None, max_attempts=6, retries=1, deadline=60.0):
    sleep = FakeSleep()
    executor = Executor(
        {"openai": ScriptedProvider(script)},
        cat.secret_for,
        Timeouts(1, 1, 1),
        max_attempts=max_attempts,
        retry=RetryPolicy(retries_per_endpoint=retries, deadline_s=deadline),
        gate=gate,
        sleep=sleep,
        clock=lambda: NOW,
    )
    planner = Planner(cat, policy=RoutingPolicy(explore_share=0), rng=random.Random(0))
    return planner, executor, sleep


def req(mode="floor", **prefs) -> RouteRequest:
    return RouteRequest(MODEL, mode, ProviderPreferences(**prefs))


def err500() -> UpstreamError:
    return UpstreamServerError("boom", upstream_status=500)


async def test_transient_failure_is_retried_with_jittered_backoff_then_falls_back() -> None:
    script = Script(a=[err500(), err500()])
    planner, executor, sleep = setup(cheapest_first("a", "b"), script)
    served = await executor.complete(planner.plan(req()), {})
    assert script.calls == ["a", "a", "b"]
    assert served.endpoint.provider == "b"
    assert [a.outcome for a in served.attempts] == ["http", "http", "ok"]
    assert len(sleep.delays) == 1 and 0 <= sleep.delays[0] <= 0.05 * 2


async def test_only_a_retryable_failure_enters_the_retry_policy(monkeypatch) -> None:
    # The first try runs outside tenacity (its machinery costs ~45 µs a request).
    import routing.retry as retry_module

    built: list[object] = []

    class CountingRetrying(retry_module.AsyncRetrying):
        def __init__(self, *args, **kwargs) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(retry_module, "AsyncRetrying", CountingRetrying)
    script = Script(a=[UpstreamBadRequest("no", upstream_status=400)])
    planner, executor, sleep = setup(cheapest_first("a", "b"), Script())
    await executor.complete(planner.plan(req()), {})
    planner, executor, sleep = setup(cheapest_first("a", "b"), script)
    with pytest.raises(GenerationFailed):
        await executor.complete(planner.plan(req()), {})
    assert built == []
    script = Script(a=[err500()])
    planner, executor, sleep = setup(cheapest_first("a", "b"), script)
    served = await executor.complete(planner.plan(req()), {})
    assert len(built) == 1 and script.calls == ["a", "a"] and len(served.attempts) == 2
    assert len(sleep.delays) == 1 and 0 <= sleep.delays[0] <= 0.05  # tenacity's first backoff


async def test_a_400_is_never_retried_nor_passed_to_another_provider() -> None:
    script = Script(a=[UpstreamBadRequest("bad", upstream_status=400)])
    planner, executor, _ = setup(cheapest_first("a", "b"), script)
    with pytest.raises(GenerationFailed) as info:
        await executor.complete(planner.plan(req()), {})
    assert script.calls == ["a"]
    assert info.value.last.client_status == 400


async def test_rejected_key_falls_back_without_retry() -> None:
    script = Script(a=[UpstreamRejected("no key", upstream_status=401)])
    planner, executor, sleep = setup(cheapest_first("a", "b"), script)
    await executor.complete(planner.plan(req()), {})
    assert script.calls == ["a", "b"] and sleep.delays == []


async def test_retry_after_moves_to_the_next_endpoint_at_once() -> None:
    script = Script(a=[UpstreamRateLimited("slow down", upstream_status=429, retry_after=30)])
    planner, executor, sleep = setup(cheapest_first("a", "b"), script)
    served = await executor.complete(planner.plan(req()), {})
    assert script.calls == ["a", "b"] and sleep.delays == []
    assert served.attempts[0].retry_after_s == 30


async def test_retry_after_is_waited_out_when_no_other_endpoint_is_allowed() -> None:
    script = Script(a=[UpstreamRateLimited("slow down", upstream_status=429, retry_after=2)])
    planner, executor, sleep = setup(cheapest_first("a", "b"), script)
    served = await executor.complete(planner.plan(req("exacto", only=("a",))), {})
    assert script.calls == ["a", "a"] and sleep.delays == [2]
    assert served.endpoint.provider == "a"


async def test_retry_after_past_the_deadline_fails_instead_of_waiting() -> None:
    script = Script(a=[UpstreamRateLimited("slow down", upstream_status=429, retry_after=120)])
    planner, executor, sleep = setup(cheapest_first("a"), script, deadline=10)
    with pytest.raises(GenerationFailed) as info:
        await executor.complete(planner.plan(req("exacto", only=("a",))), {})
    assert sleep.delays == [] and script.calls == ["a"]
    assert info.value.last.client_status == 429


async def test_the_attempt_budget_bounds_every_provider_together() -> None:
    names = ["a", "b", "c", "d"]
    script = Script(**{n: [err500()] * 5 for n in names})
    planner, executor, _ = setup(cheapest_first(*names), script, max_attempts=5, retries=1)
    with pytest.raises(GenerationFailed) as info:
        await executor.complete(planner.plan(req()), {})
    assert len(script.calls) == 5 == len(info.value.attempts)
    assert script.calls == ["a", "a", "b", "b", "c"]


failures = st.sampled_from(
    [
        "ok",
        "500",
        "429",
        "429-ra",
        "timeout",
        "reset",
        "401",
    ]
)


def make_error(kind: str) -> UpstreamError | str:
    return {
        "ok": "ok",
        "500": UpstreamServerError("x", upstream_status=500),
        "429": UpstreamRateLimited("x", upstream_status=429),
        "429-ra": UpstreamRateLimited("x", upstream_status=429, retry_after=1),
        "timeout": UpstreamTimeout("x"),
        "reset": UpstreamReset("x"),
        "401": UpstreamRejected("x", upstream_status=401),
    }[kind]


def scripts(names):
    return st.fixed_dictionaries({n: st.lists(failures.map(make_error), max_size=8) for n in names})


NAMES = ["a", "b", "c", "d", "e"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts(NAMES), st.sampled_from(NAMES), st.sampled_from(["catalog", "only", "order"]))
async def test_exacto_never_touches_a_second_provider(outcomes, pinned, how) -> None:
    cat = catalog(*(endpoint(n) for n in NAMES), exacto=pinned)
    prefs = {} if how == "catalog" else {how: (pinned,)}
    script = Script(**outcomes)
    planner, executor, _ = setup(cat, script)
    try:
        await executor.complete(planner.plan(req("exacto", **prefs)), {})
    except GenerationFailed as failed:
        assert {a.provider for a in failed.attempts} <= {pinned}
    assert set(script.calls) <= {pinned}
    assert len(script.calls) <= 6


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scripts(NAMES),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True),
    st.sampled_from(["balanced", "nitro", "floor"]),
)
async def test_allow_fallbacks_false_stops_after_the_ordered_list(outcomes, order, mode) -> None:
    script = Script(**outcomes)
    planner, executor, _ = setup(cheapest_first(*NAMES), script, max_attempts=20)
    plan = planner.plan(req(mode, order=tuple(order), allow_fallbacks=False))
    try:
        await executor.complete(plan, {})
    except GenerationFailed:
        pass
    assert set(script.calls) <= set(order)
    # and in the given order: a provider is never revisited after the next one was tried
    firsts = list(dict.fromkeys(script.calls))
    assert firsts == [p for p in order if p in firsts]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scripts(NAMES),
    st.lists(st.sampled_from(NAMES), max_size=3, unique=True),
    st.floats(min_value=0.05, max_value=0.6),
)
async def test_ignored_and_over_max_price_endpoints_are_never_tried(outcomes, ignore, cap) -> None:
    script = Script(**outcomes)
    cat = cheapest_first(*NAMES)  # prompt prices 0.1 .. 0.5
    planner, executor, _ = setup(cat, script, max_attempts=20)
    try:
        plan = planner.plan(
            req("balanced", ignore=tuple(ignore) or None, max_price=MaxPrice(prompt=cap))
        )
        await executor.complete(plan, {})
    except GenerationFailed:
        pass
    except Exception as exc:  # NoEndpoint when everything was filtered
        assert type(exc).__name__ == "NoMatchingEndpoint"
    allowed = {n for i, n in enumerate(NAMES) if n not in ignore and (i + 1) / 10 <= cap}
    assert set(script.calls) <= allowed


# -- breakers ---------------------------------------------------------------------------


async def test_open_breaker_is_skipped_while_others_remain() -> None:
    gate = Gate(BreakerState(f"{MODEL}@a", open=True, until=NOW + 30, reason="down"))
    script = Script()
    planner, executor, _ = setup(cheapest_first("a", "b"), script, gate=gate)
    plan = planner.plan(req())  # the planner's snapshot is empty: it still lists a first
    served = await executor.complete(plan, {})
    assert script.calls == ["b"]
    assert served.skipped[0].endpoint_id == f"{MODEL}@a"


async def test_open_breaker_on_the_only_endpoint_is_waited_for_within_the_deadline() -> None:
    gate = Gate(BreakerState(f"{MODEL}@a", open=True, until=NOW + 3, probe=False))
    script = Script()
    planner, executor, sleep = setup(cheapest_first("a", "b"), script, gate=gate)
    # the fake clock never moves, so once the wait is done the gate is told it passed
    original = gate.phase

    def phase(endpoint_id, now):
        return ("closed", 0.0) if sleep.delays else original(endpoint_id, now)

    gate.phase = phase
    await executor.complete(planner.plan(req("exacto", only=("a",))), {})
    assert sleep.delays == [3] and script.calls == ["a"]


async def test_open_breaker_past_the_deadline_fails_with_503_and_retry_after() -> None:
    gate = Gate(BreakerState(f"{MODEL}@a", open=True, until=NOW + 300))
    planner, executor, sleep = setup(cheapest_first("a"), Script(), gate=gate, deadline=5)
    with pytest.raises(GenerationFailed) as info:
        await executor.complete(planner.plan(req("exacto", only=("a",))), {})
    assert info.value.last.client_status == 503 and info.value.last.retry_after == 300
    assert sleep.delays == []


async def test_half_open_endpoint_gets_one_probe() -> None:
    half = BreakerState(f"{MODEL}@a", open=True, until=NOW - 1)
    won, lost = Gate(half), Gate(half, win_probe=False)
    script = Script()
    planner, executor, _ = setup(cheapest_first("a", "b"), script, gate=won)
    await executor.complete(planner.plan(req()), {})
    assert script.calls == ["a"] and won.claims == [f"{MODEL}@a"]
    script = Script()
    planner, executor, _ = setup(cheapest_first("a", "b"), script, gate=lost)
    await executor.complete(planner.plan(req()), {})
    assert script.calls == ["b"]


async def test_busy_llamacpp_spills_over() -> None:
    cat = catalog(endpoint("local", "0", "0", max_concurrency=1), endpoint("b"))
    script = Script()
    planner, executor, _ = setup(cat, script)
    plan = planner.plan(req())
    held = await executor.open_stream(plan, {})  # occupies the only slot
    assert held.endpoint.provider == "local"
    served = await executor.complete(plan, {})
    assert served.endpoint.provider == "b"
    await held.aclose()  # the stream's end frees the slot: no separate "finish" call
    assert (await executor.complete(plan, {})).endpoint.provider == "local"


# -- streams ------------------------------------------------------------------------------


async def test_stream_falls_back_before_the_first_chunk() -> None:
    script = Script(a=[err500(), err500()])
    planner, executor, _ = setup(cheapest_first("a", "b"), script)
    opened = await executor.open_stream(planner.plan(req()), {})
    assert opened.endpoint.provider == "b"
    assert [a.provider for a in opened.attempts] == ["a", "a"]
    chunks = [c async for c in opened]
    assert chunks[-1].usage is not None and opened.usage == chunks[-1].usage
    assert opened.attempts[-1].outcome == "ok" and opened.attempts[-1].streamed


async def test_stream_cut_after_the_first_chunk_is_not_retried() -> None:
    script = Script(a=["cut"])
    planner, executor, _ = setup(cheapest_first("a", "b"), script)
    opened = await executor.open_stream(planner.plan(req()), {})
    with pytest.raises(UpstreamReset):
        async for _ in opened:
            pass
    assert script.calls == ["a"]
    assert [a.outcome for a in opened.attempts] == ["reset"]


async def test_successful_answers_are_remembered_for_cache_affinity() -> None:
    memory = AffinityMemory()
    cat = cheapest_first("a", "b")
    script = Script()
    executor = Executor(
        {"openai": ScriptedProvider(script)},
        cat.secret_for,
        Timeouts(1, 1, 1),
        on_served=memory,
        clock=lambda: NOW,
    )
    plan = Planner(cat).plan(RouteRequest(MODEL, "floor", affinity_key="conv"))
    await executor.complete(plan, {})
    warm = memory.recall("conv", NOW)
    assert warm is not None and warm.endpoint_id == f"{MODEL}@a" and warm.prompt_tokens == 10


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def observe(self, attempt, error) -> None:
        self.seen.append((attempt.outcome, type(error).__name__ if error else None))


async def test_every_attempt_reaches_the_observer() -> None:
    cat = cheapest_first("a", "b")
    recorder = Recorder()
    script = Script(a=[UpstreamRejected("no", upstream_status=404)])
    executor = Executor(
        {"openai": ScriptedProvider(script)}, cat.secret_for, Timeouts(1, 1, 1), observer=recorder
    )
    await executor.complete(Planner(cat).plan(req()), {})
    assert recorder.seen == [("http", "UpstreamRejected"), ("ok", None)]


async def test_every_breaker_open_fails_fast_with_the_earliest_retry_after() -> None:
    gate = Gate(
        BreakerState(f"{MODEL}@a", open=True, until=NOW + 9),
        BreakerState(f"{MODEL}@b", open=True, until=NOW + 4),
    )
    script = Script()
    planner, executor, sleep = setup(cheapest_first("a", "b"), script, gate=gate)
    with pytest.raises(GenerationFailed) as info:
        await executor.complete(planner.plan(req()), {})
    assert script.calls == [] and sleep.delays == []
    assert info.value.last.client_status == 503 and info.value.last.retry_after == 4
    assert [s.endpoint_id for s in info.value.skipped] == [f"{MODEL}@a", f"{MODEL}@b"]


async def test_retry_after_on_the_last_of_several_endpoints_is_not_waited_for() -> None:
    script = Script(
        a=[UpstreamServerError("x", upstream_status=500)] * 2,
        b=[UpstreamRateLimited("x", upstream_status=429, retry_after=5)],
    )
    planner, executor, sleep = setup(cheapest_first("a", "b"), script)
    with pytest.raises(GenerationFailed) as info:
        await executor.complete(planner.plan(req()), {})
    assert script.calls == ["a", "a", "b"] and 5 not in sleep.delays
    assert info.value.last.client_status == 429 and info.value.last.retry_after == 5


def answered_reset() -> UpstreamError:
    error = UpstreamReset("cut after the status line")
    error.answered = True
    return error


async def test_an_answered_failure_is_never_sent_again_to_that_endpoint() -> None:
    script = Script(a=[answered_reset()])
    planner, executor, _ = setup(cheapest_first("a", "b"), script)
    served = await executor.complete(planner.plan(req()), {})
    assert script.calls == ["a", "b"]  # fell back at once: no retry of "a"
    assert [a.outcome for a in served.attempts] == ["reset", "ok"]
    lone = Script(a=[answered_reset()])
    planner, executor, _ = setup(cheapest_first("a"), lone)
    with pytest.raises(GenerationFailed):  # even when it is the only one allowed
        await executor.complete(planner.plan(req(allow_fallbacks=False)), {})
    assert lone.calls == ["a"]


class _Silent(ScriptedProvider):
    """Endpoint "a" takes a stream and never sends a token."""

    async def stream(self, call):  # type: ignore[override]
        self.calls.append(call)
        if call.endpoint.provider == "a":
            await asyncio.Event().wait()
        yield Chunk({"choices": [{"index": 0, "delta": {"content": "h"}}]})


async def test_a_stream_without_a_first_token_in_time_is_not_sent_again_to_it() -> None:
    cat = cheapest_first("a", "b")
    provider = _Silent(Script())
    executor = Executor(
        {"openai": provider}, cat.secret_for, Timeouts(1, 0.05, 5), sleep=FakeSleep()
    )
    planner = Planner(cat, policy=RoutingPolicy(explore_share=0), rng=random.Random(0))
    opened = await executor.open_stream(planner.plan(req()), {})
    assert opened.endpoint.provider == "b"
    assert [c.endpoint.provider for c in provider.calls] == ["a", "b"]  # "a" once
    assert opened.attempts[0].outcome == "timeout"
    await opened.aclose()


# -- the opened stream owns its attempt's ending --------------------------------------------


async def test_a_stream_read_to_the_end_records_its_attempt_once() -> None:
    planner, executor, _ = setup(cheapest_first("a"), Script())
    opened = await executor.open_stream(planner.plan(req()), {})
    chunks = [c async for c in opened]
    assert len(chunks) == 3 and opened.ended == "ok"
    await opened.aclose()  # after the end: nothing more is recorded
    assert [a.outcome for a in opened.attempts] == ["ok"]
    assert opened.attempts[0].completion_tokens == 5
    assert opened.completion_text == "h"


async def test_a_stream_closed_early_records_a_cancelled_attempt_once() -> None:
    planner, executor, _ = setup(cheapest_first("a"), Script())
    opened = await executor.open_stream(planner.plan(req()), {})
    first = await anext(opened)
    assert first.data["choices"][0]["delta"]["content"] == "h"
    await opened.aclose()
    await opened.aclose()
    assert [a.outcome for a in opened.attempts] == ["cancelled"]
    with pytest.raises(StopAsyncIteration):
        await anext(opened)


async def test_a_stream_failing_mid_way_records_the_error_once() -> None:
    planner, executor, _ = setup(cheapest_first("a"), Script(a=["cut"]))
    opened = await executor.open_stream(planner.plan(req()), {})
    await anext(opened)
    with pytest.raises(UpstreamReset):
        await anext(opened)
    await opened.aclose()
    assert [a.outcome for a in opened.attempts] == ["reset"]
    assert opened.ended == "error" and isinstance(opened.error, UpstreamReset)


async def test_attempts_go_into_the_callers_list_as_they_end() -> None:
    planner, executor, _ = setup(cheapest_first("a", "b"), Script(a=[err500(), err500()]))
    attempts: list = []
    served = await executor.complete(planner.plan(req()), {}, attempts)
    assert served.attempts is attempts
    assert [a.provider for a in attempts] == ["a", "a", "b"]


async def test_exactly_one_completion_cap_reaches_the_upstream() -> None:
    cat = catalog(endpoint("a", max_completion_tokens=300))
    script = Script()
    provider = ScriptedProvider(script)
    executor = Executor({"openai": provider}, cat.secret_for, Timeouts(1, 1, 1))
    planner = Planner(cat, policy=RoutingPolicy(explore_share=0), rng=random.Random(0))
    for asked, sent in ((None, 300), (50, 50)):
        route = RouteRequest(MODEL, "floor", max_tokens=asked, prompt_tokens=10)
        await executor.complete(planner.plan(route), {"max_completion_tokens": 9000})
        assert provider.calls[-1].body["max_tokens"] == sent
