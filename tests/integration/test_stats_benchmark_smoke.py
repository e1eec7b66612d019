"""`python -m benchmarks.stats` runs from its one command on a small ledger: it seeds, builds the
rollups, times every stats query (each answered 200) and writes its table. Never how fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_small_run_writes_every_query(tmp_path: Path) -> None:
    output = tmp_path / "stats.md"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.stats"),
            *("--generations", "3000", "--repeats", "1", "--output", str(output)),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = output.read_text()
    assert "generations 3,000" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "ms" not in line]
    assert len(rows) == 12, table  # every query of the stats API, timed
    assert "stats_rollup" in table
