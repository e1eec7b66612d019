"""The overhead harness runs from its one command and reports every figure with zero errors.

A smoke run (about a second per figure) against the real Postgres and Redis; it asserts the
table is there and nothing failed, never how fast anything was.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_DSN, REDIS_URL

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def _table_rows(text: str, section: str) -> list[list[str]]:
    """The body rows of the first table after `### section`, as stripped cells."""
    lines = text.split(f"### {section}", 1)[1].strip().splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_quick_run_writes_the_table_with_zero_errors(tmp_path: Path) -> None:
    output = tmp_path / "overhead.md"
    command = [
        *(sys.executable, "-m", "benchmarks.overhead", "--quick"),
        *("--connections", "1", "16", "--workers", "2", "--streams", "50"),
        *("--stream-requests", "20", "--ledger-seconds", "1", "--micro-rounds", "100"),
        *("--idle-wait", "0", "--output", str(output)),
        *("--postgres", PG_ADMIN_DSN.rsplit("/", 1)[0], "--redis", REDIS_URL),
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    text = output.read_text()
    assert "nproc" in text  # the machine it ran on

    throughput = _table_rows(text, "Non-streaming requests")
    names = {row[0] for row in throughput}
    assert {"upstream (direct)", "gateway, 1 worker", "gateway, 2 workers"} <= names
    assert "gateway, 1 worker, key without limits" in names
    assert "gateway, 1 worker, key with a spend limit only (leased)" in names
    assert {row[1] for row in throughput} == {"1", "16"}
    assert all(row[10] == "0" for row in throughput), throughput  # errors column
    for row in throughput:  # p50 <= p99 <= p99.9, each a figure
        p50, p99, p999 = (float(cell) for cell in row[3:6])
        assert 0 <= p50 <= p99 <= p999 and p999 > 0, row

    streaming = dict((row[0], row[1:]) for row in _table_rows(text, "Streaming (1 client)"))
    assert streaming["errors"][1] == "0"

    (ledger,) = _table_rows(text, "Ledger under sustained load")
    answered, non_2xx, in_postgres = ledger[3], ledger[4], ledger[6]
    assert non_2xx == "0"
    assert int(answered.replace(",", "")) > 0
    assert in_postgres == answered  # every answered generation has its ledger row

    micro = _table_rows(text, "Micro-benchmarks (one call, in process)")
    assert any(row[0].startswith("routing decision") for row in micro)
    assert any(row[0].startswith("auth") for row in micro)
    assert any(row[0].startswith("build ledger event") for row in micro)
