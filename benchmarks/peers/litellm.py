"""LiteLLM's proxy as a peer: a venv of its own in the cache, one worker, the stub as its one
OpenAI-compatible deployment.

Nothing in its environment comes from ours (no keys); the remote lookups it documents switches
for are switched to local files, and any HTTP client that honours proxy variables is sent to a
closed loopback port for everything but loopback.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness.machine import tree_of
from benchmarks.harness.processes import HOST, free_port
from benchmarks.harness.stack import CHAT_PATH, MODEL
from benchmarks.peers.context import Context
from benchmarks.peers.install import install_step, installed_version
from benchmarks.peers.servers import Running, Skip, peer_process

VERSION = "1.106.12"  # its proxy extras resolve on PyPI; 1.107.0 was a compromised release
NAME = f"LiteLLM proxy {VERSION} (1 worker)"
UPSTREAM_KEY = "bench-not-a-secret"  # the stub checks no key; LiteLLM wants one to send
DEAD_PROXY = f"http://{HOST}:9"  # discard port: nothing listens, a connection is refused at once

# Documented switches: local copies instead of fetching from the internet, no feedback banner.
_OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
    "LITELLM_TELEMETRY": "False",
}


def config_yaml(upstream_port: int) -> str:
    """One deployment, named as the benchmark's model, on the stub; no database. The master
    key (which it refuses to start without) comes from the environment."""
    return f"""model_list:
  - model_name: "{MODEL}"
    litellm_params:
      model: "openai/gpt-oss-20b"
      api_base: "http://{HOST}:{upstream_port}/v1"
      api_key: "{UPSTREAM_KEY}"
litellm_settings:
  telemetry: false
  set_verbose: false
"""


def environment(home: Path, master_key: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",  # no .env file loaded from the working directory
        **_OFFLINE,
        **{name: DEAD_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
        "NO_PROXY": f"{HOST},localhost",
        "no_proxy": f"{HOST},localhost",
    }


def ensure_installed(cache: Path, *, install: bool) -> Path:
    """The venv's `litellm` command, installing the pinned version first if needed."""
    home = cache / "litellm"
    python = home / "venv" / "bin" / "python"
    probe = [str(python), "-c", "from importlib.metadata import version; print(version('litellm'))"]
    if installed_version(probe) == VERSION:
        return home / "venv" / "bin" / "litellm"
    if not install:
        raise Skip(f"LiteLLM {VERSION} is not installed in {home} (--no-install)")
    log = home / "install.log"
    if not python.exists():
        install_step("LiteLLM", [sys.executable, "-m", "venv", str(home / "venv")], log)
    install_step(
        "LiteLLM",
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         f"litellm[proxy]=={VERSION}"],
        log,
    )  # fmt: skip
    return home / "venv" / "bin" / "litellm"


@contextlib.contextmanager
def running_litellm(ctx: Context) -> Iterator[Running]:
    command = ensure_installed(ctx.cache, install=ctx.install)
    workdir = ctx.workdir / "litellm"
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yaml"
    config.write_text(config_yaml(ctx.upstream_port))
    port = free_port()
    args = [str(command), "--config", str(config), "--host", HOST, "--port", str(port)]
    args += ["--num_workers", "1"]
    log = ctx.logs / "litellm.log"
    master_key = f"sk-bench-{secrets.token_hex(16)}"  # this run's only, never logged by us
    auth = {"Authorization": f"Bearer {master_key}"}
    env = environment(workdir / "home", master_key)
    with peer_process(NAME, args, port, auth, cwd=workdir, env=env, log=log) as proc:
        yield Running(
            NAME,
            f"http://{HOST}:{port}{CHAT_PATH}",
            auth,
            lambda: tree_of(proc.pid),
            "`litellm --config config.yaml --num_workers 1` (uvicorn), one `openai/` deployment "
            "with `api_base` the stub; the master key as the client's key (it won't start "
            "without one), no database; `LITELLM_LOG=ERROR`",
        )
