"""wrk as the load generator: the Lua POST script, one bounded run, and its parsed figures.

wrk stops by itself after `seconds`; a run that hangs is killed after `seconds + 30`. `--latency`
prints p50/p75/p90/p99 only, so every script also prints p99.9 from wrk's histogram at the end.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One wrk run against one target, plus the CPU the target's processes spent serving it."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    requests: int
    errors: int
    cpu_s: float = 0.0
    busy: bool = False  # started although other work kept the machine busy
    extra_cpu_s: float = 0.0  # CPU of processes behind the target (Redis, Postgres)
    non_2xx: int = 0  # part of `errors`: answers that were not 2xx/3xx

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / max(self.requests, 1)

    @property
    def extra_cpu_us_per_request(self) -> float:
        return self.extra_cpu_s * 1e6 / max(self.requests, 1)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}

# Each wrk thread appends the generation id of every 2xx answer to its own file, so a
# benchmark can check that every answered generation reached the ledger.
_COLLECT_IDS = """
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("n", counter)
end
function init(args)
  ids = io.open(IDS_DIR .. "/ids-" .. n .. ".txt", "w")
  ids:setvbuf("line")  -- wrk never closes thread states: flush as we go
end
function response(status, headers, body)
  if status >= 200 and status < 300 then
    local id = headers["x-generation-id"] or headers["X-Generation-Id"]
    if id then ids:write(id, "\\n") end
  end
end
"""

# wrk calls `done` once after the run with the whole latency histogram (in microseconds).
_P999_LABEL = "Latency p99.9 us:"
_PRINT_P999 = f"""
function done(summary, latency, requests)
  io.write(string.format("{_P999_LABEL} %d\\n", latency:percentile(99.9)))
end
"""


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lua_script(
    body: bytes, headers: Mapping[str, str] | None = None, ids_dir: Path | None = None
) -> str:
    """A wrk script POSTing `body` with JSON content type and `headers`."""
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    lines.append(f"wrk.body = {_lua_string(body.decode())}")
    script = "\n".join(lines) + "\n" + _PRINT_P999
    if ids_dir is not None:
        script += f"IDS_DIR = {_lua_string(str(ids_dir))}\n" + _COLLECT_IDS
    return script


def collected_ids(ids_dir: Path) -> list[str]:
    """Generation ids written by a script made with `ids_dir` (the files are flushed at exit)."""
    ids: list[str] = []
    for path in sorted(ids_dir.glob("ids-*.txt")):
        ids.extend(line for line in path.read_text().splitlines() if line)
    return ids


def _search(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        raise ValueError(f"{pattern!r} not in wrk output:\n{output}")
    return match


def _latency_ms(output: str, percentile: str) -> float:
    match = _search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output)
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> Run:
    """Requests/sec, p50/p99/p99.9, request and error counts from `wrk --latency` output (with
    the p99.9 line a `lua_script` prints)."""
    errors = not_ok = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        not_ok = int(non_2xx[1])
        errors += not_ok
    if sockets := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in sockets.groups())
    return Run(
        requests_per_s=float(_search(r"^Requests/sec:\s+([\d.]+)", output)[1]),
        p50_ms=_latency_ms(output, "50"),
        p99_ms=_latency_ms(output, "99"),
        p999_ms=int(_search(rf"^{re.escape(_P999_LABEL)} (\d+)$", output)[1]) / 1000,
        requests=int(_search(r"^\s*(\d+) requests in", output)[1]),
        errors=errors,
        non_2xx=not_ok,
    )


def run_wrk(url: str, script: Path, *, connections: int, threads: int, seconds: float) -> Run:
    """One `wrk --latency` run of `seconds` (rounded up to whole seconds, as wrk takes them)."""
    whole = max(int(seconds + 0.999), 1)
    command = [
        *("wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{whole}s"),
        *("--timeout", "5s", "--latency", "-s", str(script), url),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=whole + 30, check=True)
    return parse_wrk(done.stdout)
