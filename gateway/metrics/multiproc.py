"""The directory `prometheus_client` shares between worker processes, set up by `gateway serve`.

Kept apart from `gateway.metrics.prometheus` on purpose: `prometheus_client` decides at import
time whether it runs in multiprocess mode, so the directory must be in the environment before
any worker imports it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_metrics_dir(workers: int) -> Iterator[str | None]:
    """With several workers: a fresh directory (or the operator's, emptied of a previous run's
    files) in `PROMETHEUS_MULTIPROC_DIR` while the server runs; ours is removed afterwards."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # samples of dead processes would be summed in
            stale.unlink()
        yield given
        return
    if workers <= 1:
        yield None
        return
    made = tempfile.mkdtemp(prefix="gateway-prometheus-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)
