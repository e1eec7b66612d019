"""`gateway serve` as a new user runs it: a real process on the embedded default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.gateway import free_port

START_DEADLINE_S = 30.0


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("gateway serve did not answer /health in time")


def test_serve_on_embedded_default_answers_models(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "DATABASE_URL", "REDIS_"))
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        models = httpx.get(f"{url}/v1/models", timeout=5).json()["data"]
        assert [m["id"] for m in models] == ["openai/gpt-oss-20b"]
        pricing = models[0]["pricing"]
        assert {"prompt", "completion", "input_cache_read"} <= set(pricing)
        ready = httpx.get(f"{url}/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["database"] == "ok"
        endpoints = httpx.get(
            f"{url}/api/v1/models/openai/gpt-oss-20b/endpoints", timeout=5
        ).json()["data"]["endpoints"]
        by_provider = {e["provider_name"]: e for e in endpoints}
        assert by_provider["local"]["enabled"] is True
        assert by_provider["groq"]["enabled"] is False
        assert "GROQ_API_KEY" in by_provider["groq"]["disabled_reason"]
        assert (tmp_path / "var" / "gateway.sqlite3").exists()  # the embedded ledger
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode() if proc.stdout else ""
    # uvicorn re-raises SIGTERM after a clean shutdown, so -SIGTERM is a clean exit too.
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output or proc.returncode == 0, output
    assert "alembic" not in output, output  # no INFO chatter from migrations, ours says it
    assert "database migrated to head" in output, output


def test_serve_with_a_bad_catalog_exits_2_with_one_line(tmp_path: Path) -> None:
    catalog = tmp_path / "bad.toml"
    catalog.write_text(
        '[models."m/x"]\nname = "x"\ncontext_length = 8192\n\n'
        '[[endpoints]]\nmodel = "m/x"\nprovider = "free"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'upstream_model = "x"\ncontext_length = 8192\nprice = {}\n'
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "DATABASE_URL", "REDIS_"))
    }
    command = ["serve", "--catalog", str(catalog), "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=START_DEADLINE_S,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.splitlines() == [
        f"gateway serve: {catalog}: endpoints[0].price needs prompt and completion "
        '(USD per 1M tokens as decimal strings; write "0" for a free endpoint)'
    ]
    assert not (tmp_path / "var").exists()  # nothing started: no migration, no ledger file
