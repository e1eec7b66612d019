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


def _clean_env() -> dict[str, str]:
    keys = ("GATEWAY_", "DATABASE_URL", "REDIS_", "GROQ_", "TOGETHER_", "DEEPINFRA_")
    return {k: v for k, v in os.environ.items() if not k.startswith(keys)}


def test_serve_simulate_answers_the_readme_snippet_with_no_keys(tmp_path: Path) -> None:
    """A newcomer's first run: no keys, no llama-server, `serve --simulate`, the README's
    openai snippet answers; the simulated providers sit on a port of their own."""
    from openai import OpenAI

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--simulate", "--port", str(port)],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        client = OpenAI(base_url=f"{url}/v1", api_key="unused-while-auth-is-off")
        reply = client.chat.completions.create(
            model="openai/gpt-oss-20b",
            messages=[{"role": "user", "content": "Hello"}],
            extra_body={"provider": {"only": ["local"]}},
        )
        assert reply.choices[0].message.content
        assert reply.model_extra is not None and reply.model_extra["provider"] == "local"
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        plain = client.chat.completions.create(
            model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "Hello"}]
        )
        assert plain.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode in (0, -signal.SIGTERM), output
    fleet_line = next(line for line in output.splitlines() if "simulated providers at" in line)
    fleet_port = int(fleet_line.split("http://127.0.0.1:")[1].split("/")[0])
    assert fleet_port not in (port, 9100)  # a free port of its own, never the fixed default
    rows = [line.split() for line in output.splitlines() if line.startswith("openai/gpt-oss-20b")]
    assert {row[1] for row in rows} >= {"groq", "local", "deepinfra"}
    assert all(row[3] == "enabled" and row[4] == "yes" for row in rows), output


def test_serve_prints_the_endpoint_table_with_why_and_a_hint(tmp_path: Path) -> None:
    catalog = tmp_path / "c.toml"
    catalog.write_text(
        '[models."m/x"]\nname = "x"\ncontext_length = 8192\n\n'
        '[[endpoints]]\nmodel = "m/x"\nprovider = "nowhere"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'upstream_model = "x"\ncontext_length = 8192\nprice = { prompt = "0", completion = "0" }\n'
        '\n[[endpoints]]\nmodel = "m/x"\nprovider = "keyed"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'upstream_model = "x"\ncontext_length = 8192\napi_key_env = "KEYED_TEST_KEY"\n'
        'price = { prompt = "0", completion = "0" }\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--catalog",
            str(catalog),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode() if proc.stdout else ""
    rows = {line.split()[1]: line for line in output.splitlines() if line.startswith("m/x")}
    assert "enabled" in rows["nowhere"] and "no: " in rows["nowhere"], output
    assert "disabled: " in rows["keyed"] and "KEYED_TEST_KEY" in rows["keyed"], output
    assert "gateway serve --simulate" in output  # the hint: nothing enabled answers
