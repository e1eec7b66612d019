"""`python -m benchmarks.peers` runs from its one command: our targets measured, a peer that is
not installed left out with its reason, a table with p99.9 and a chart. Never how fast.

A smoke run (1 s, 1 client) with an empty peer cache and `--no-install`: the suite never
installs LiteLLM or Portkey, so both must be reported as not measured and the run still succeed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_DSN, REDIS_URL

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def _table(text: str) -> list[list[str]]:
    lines = text.split("### Non-streaming chat completions", 1)[1].strip().splitlines()
    assert lines[0].startswith("| target | clients | req/s | p50 ms | p99 ms | p99.9 ms |")
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_our_targets_measured_and_missing_peers_skipped_with_a_reason(tmp_path: Path) -> None:
    output = tmp_path / "peers.md"
    command = [
        *(sys.executable, "-m", "benchmarks.peers"),
        *("--targets", "direct,gateway,gateway-full,litellm,portkey"),
        *("--duration", "1", "--connections", "1", "--warmup", "0", "--idle-wait", "0"),
        *("--no-install", "--cache", str(tmp_path / "no-peers-here")),
        *("--output", str(output), "--logs", str(tmp_path / "logs")),
        *("--postgres", PG_ADMIN_DSN.rsplit("/", 1)[0], "--redis", REDIS_URL),
    ]
    # Its scratch directory, and so every server's environment, names tmp_path: after the run
    # no process may still carry it.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert _processes_naming(str(tmp_path)) == []
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    text = output.read_text()

    rows = _table(text)
    assert [row[0] for row in rows] == [
        "direct to the stub",
        "this gateway, embedded default",
        "this gateway, everything on",
    ]
    for row in rows:
        assert row[1] == "1"
        assert float(row[2].rstrip("*").replace(",", "")) > 0  # req/s
        p50, p99, p999 = (float(cell) for cell in row[3:6])
        assert 0 <= p50 <= p99 <= p999 and p999 > 0, row
        assert row[7] == "0", row  # errors

    not_measured = text.split("Not measured:", 1)[1].split("###", 1)[0]
    assert "`litellm`: LiteLLM" in not_measured and "(--no-install)" in not_measured
    assert "`portkey`: Portkey" in not_measured

    chart = output.with_suffix(".png")
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert f"]({chart.name})" in text
    assert not (tmp_path / "no-peers-here").exists()  # --no-install installed nothing


def _processes_naming(text: str) -> list[int]:
    """Processes whose environment contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in environ:
            found.append(int(entry.name))
    return found
