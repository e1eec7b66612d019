"""Ledger under sustained load: lag while wrk runs, drain time after, rows written vs answered.

wrk records the generation id of every 2xx answer; each must be a row in Postgres. Rows may
exceed answers by the requests wrk abandoned when its time ran out (answered by the gateway,
never read by wrk).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.ledger_probe import LagSampler, ledger_counts
from benchmarks.harness.stack import CHAT_BODY, Gateway, Stack
from benchmarks.harness.wrk import collected_ids, lua_script, run_wrk
from benchmarks.overhead.streaming import percentile

APP_TITLE = "bench-ledger"
DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LedgerFigures:
    connections: int
    seconds: float
    requests_per_s: float
    answered: int  # 2xx answers wrk read (their ids)
    non_2xx: int
    socket_errors: int  # wrk's connect/read/write/timeout count
    found: int  # of those, rows in `generations`
    written: int  # all rows of this phase (answered + abandoned by wrk at the end)
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    drain_s: float | None  # after the load stopped, until the stream was empty
    failed: dict[str, int]  # generations that did not end ok, by status and message


def measure_ledger(
    stack: Stack, gateway: Gateway, connections: int, seconds: float
) -> LedgerFigures:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        ids_dir = Path(tmp)
        script = ids_dir / "ledger.lua"
        headers = {**stack.auth_headers, "X-Title": APP_TITLE}
        script.write_text(lua_script(CHAT_BODY, headers, ids_dir=ids_dir))
        stream = stack.backing.ledger_stream(gateway.redis_prefix)
        sampler = LagSampler(stack.backing.redis_url, stream)
        sampler.start()
        try:
            run = run_wrk(gateway.url, script, connections=connections, threads=1, seconds=seconds)
            during = sampler.lags()
            drain = sampler.wait_drained(DRAIN_TIMEOUT_S)
        finally:
            sampler.stop()
        ids = collected_ids(ids_dir)
    counts = ledger_counts(stack.backing.dsn, ids, APP_TITLE)
    return LedgerFigures(
        connections=connections,
        seconds=seconds,
        requests_per_s=run.requests_per_s,
        answered=len(ids),
        non_2xx=run.non_2xx,
        socket_errors=run.errors - run.non_2xx,
        found=counts.found,
        written=counts.written,
        lag_p50_s=statistics.median(during) if during else 0.0,
        lag_p99_s=percentile(during, 0.99) if during else 0.0,
        lag_max_s=max(during, default=0.0),
        drain_s=drain,
        failed=counts.failed,
    )
