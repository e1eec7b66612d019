"""The 2-minute soak (`python -m benchmarks.soak --minutes 2`): two replicas under a steady rate
with random upstream faults stay flat by the soak's own bounds, and every answered generation is
in the ledger. The 30-minute run is the same command, run by hand (README, "Soak")."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak.verdict import BOUNDS
from tests.integration.ledger_fixtures import clean_env

MINUTES = 2
RATE = 10  # requests a second: kind to a busy 2-core machine, still ~1,200 requests
# Start-up (database, simulator, two replicas) and the drain, on a busy machine.
OVERHEAD_S = 240


@pytest.mark.timeout(MINUTES * 60 + OVERHEAD_S + 60)
def test_a_two_minute_soak_stays_flat_and_loses_nothing(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.soak", "--minutes", str(MINUTES)),
            *("--rate", str(RATE), "--output-dir", str(tmp_path)),
            *("--logs-dir", str(tmp_path / "logs")),
        ],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=MINUTES * 60 + OVERHEAD_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (report,) = tmp_path.glob("soak-*.md")
    text = report.read_text()
    assert ": PASS" in text.splitlines()[0]
    (table,) = tmp_path.glob("soak-*.csv")
    with table.open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= MINUTES * 6 - 1  # one sample every 10 s
    kinds = {column.rsplit(".", 1)[-1] for column in rows[0] if column != "t_s"}
    assert kinds == set(BOUNDS)
    assert all(float(row["a.rss_mb"]) > 0 and float(row["b.rss_mb"]) > 0 for row in rows)
    (plot,) = tmp_path.glob("soak-*.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
