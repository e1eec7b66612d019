"""Installing a peer once into the cache, bounded in time, with its output kept in a log.

A failed or timed-out install is a `Skip` quoting the last lines of that log.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.peers.servers import Skip

DEFAULT_CACHE = Path.home() / ".cache" / "llm-gateway" / "peers"
INSTALL_TIMEOUT_S = 900.0  # LiteLLM's proxy extras are ~150 packages


def install_step(
    what: str,
    command: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = INSTALL_TIMEOUT_S,
) -> None:
    """Run one install command (its output appended to `log`); `Skip` if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                list(command),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise Skip(f"{what}: install took over {timeout:.0f} s (log: {log})") from exc
        except OSError as exc:
            raise Skip(f"{what}: install could not start: {exc}") from exc
    if done.returncode != 0:
        raise Skip(f"{what}: install failed ({_tail(log)}; log: {log})")


def _tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    wanted = [line for line in text if not line.startswith("WARNING")][-lines:]
    return " / ".join(line.strip() for line in wanted)


def installed_version(command: Sequence[str]) -> str | None:
    """The version a probe command prints, or None when it can't run."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
