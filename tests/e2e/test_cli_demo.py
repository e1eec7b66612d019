"""`gateway demo` as a new user runs it: offline, no keys, a table per routing mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_prints_a_row_per_mode_with_no_errors(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "DATABASE_URL", "REDIS_")) and not k.endswith("_KEY")
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--requests", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("mode "))
    rows = {line.split()[0]: line for line in lines[header + 2 :] if line.strip()}
    assert set(rows) == {"balanced", "nitro", "floor", "exacto"}
    for mode, row in rows.items():
        assert row.rstrip().endswith("0/3"), f"{mode} had errors: {row}"
    # exacto is the catalog's fixed provider; nitro picks the fastest one
    assert "groq x3" in rows["exacto"]
    assert "groq x3" in rows["nitro"]
