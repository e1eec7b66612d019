"""What every target's starter gets: the stub's port, where to put files, how to install."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Context:
    upstream_port: int  # the stub every target calls
    workdir: Path  # this run's scratch files, removed at the end
    logs: Path  # each server's output, kept after the run
    cache: Path  # where peers are installed once (~/.cache/llm-gateway/peers)
    install: bool  # install a missing peer (else skip it)
    postgres: str  # postgresql://user@host:port, for the gateway with everything on
    redis: str
