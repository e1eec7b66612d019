"""Portkey's gateway as a peer: the npm package in the cache, run by node, headless, routing
each request to the stub as an OpenAI-compatible provider with a custom host (request headers).

The server it starts listens on every address by default and takes no host setting, so node
preloads a module of ours that binds every listening socket of the process to loopback; the
harness checks the listening addresses before measuring anything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness.machine import tree_of
from benchmarks.harness.processes import HOST, free_port
from benchmarks.harness.stack import CHAT_PATH
from benchmarks.peers.context import Context
from benchmarks.peers.install import install_step, installed_version
from benchmarks.peers.servers import Running, Skip, peer_process

PACKAGE = "@portkey-ai/gateway"
VERSION = "1.15.2"
UPSTREAM_KEY = "bench-not-a-secret"

# Ours, loaded with `node --import` before the server: every `listen` goes to loopback.
LOOPBACK_ONLY_MJS = f"""import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {{
  const done = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  const first = args[0];
  const options = first !== null && typeof first === "object" ? {{ ...first }} : {{ port: first }};
  options.host = "{HOST}";
  return done ? listen.call(this, options, done) : listen.call(this, options);
}};
"""


def headers(upstream_port: int) -> dict[str, str]:
    """Portkey's documented per-request routing: provider `openai` at a custom host."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://{HOST}:{upstream_port}/v1",
        "Authorization": f"Bearer {UPSTREAM_KEY}",
    }


def ensure_installed(cache: Path, *, install: bool) -> tuple[str, Path]:
    """node and the server script of the pinned package, installing it first if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Skip("Portkey: node and npm are needed (apt-get install -y nodejs npm)")
    home = cache / "portkey"
    package = home / "node_modules" / PACKAGE
    probe = [node, "-p", f"require({str(package / 'package.json')!r}).version"]
    if installed_version(probe) != VERSION:
        if not install:
            raise Skip(f"Portkey {VERSION} is not installed in {home} (--no-install)")
        home.mkdir(parents=True, exist_ok=True)
        install_step(
            "Portkey",
            [npm, "install", "--prefix", str(home), "--no-audit", "--no-fund",
             "--no-update-notifier", "--ignore-scripts", f"{PACKAGE}@{VERSION}"],
            home / "install.log",
            timeout=600,
        )  # fmt: skip
    script = package / "build" / "start-server.js"
    if not script.exists():
        raise Skip(f"Portkey: {script} is missing after the install")
    return node, script


def node_version(node: str) -> str:
    return installed_version([node, "--version"]) or "node"


@contextlib.contextmanager
def running_portkey(ctx: Context) -> Iterator[Running]:
    node, script = ensure_installed(ctx.cache, install=ctx.install)
    name = f"Portkey gateway {VERSION} (node {node_version(node).lstrip('v')})"
    workdir = ctx.workdir / "portkey"
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    preload = workdir / "loopback-only.mjs"
    preload.write_text(LOOPBACK_ONLY_MJS)
    port = free_port()
    args = [node, "--import", preload.as_uri(), str(script), f"--port={port}", "--headless"]
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workdir / "home"),
        "LANG": "C.UTF-8",
        "NODE_ENV": "production",
    }
    routing = headers(ctx.upstream_port)
    log = ctx.logs / "portkey.log"
    with peer_process(name, args, port, routing, cwd=workdir, env=env, log=log) as proc:
        yield Running(
            name,
            f"http://{HOST}:{port}{CHAT_PATH}",
            routing,
            lambda: tree_of(proc.pid),
            "`node build/start-server.js --headless`, `NODE_ENV=production`; each request "
            "names provider `openai` and the stub as custom host (`x-portkey-*` headers)",
        )
