"""A measured server once it answers, and the checks every peer passes before it is measured.

Not the starting of any one server: `ours.py` starts the gateway, `litellm.py` and `portkey.py`
the peers. A target that can't be installed or doesn't answer raises `Skip`; the run goes on.
"""

from __future__ import annotations

import contextlib
import http.client
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness.machine import listening_addresses
from benchmarks.harness.processes import HOST, serving
from benchmarks.harness.stack import CHAT_BODY, CHAT_PATH

# Part of the stub's fixed answer (benchmarks.harness.upstream.UPSTREAM_BODY): an answer that
# carries it came from the stub, through the server, not from anywhere else.
STUB_MARK = b"How can I help you today?"
PEER_READY_TIMEOUT_S = 180.0  # LiteLLM imports for a long while on a busy 2-core machine


class Skip(Exception):
    """This target can't run here (not installable, not answering): measured without it."""


@dataclass(frozen=True)
class Running:
    """A target under load: where wrk sends the chat request and whose CPU serves it."""

    name: str  # the row's label in the table and the chart
    url: str
    headers: Mapping[str, str]
    pids: Callable[[], Sequence[int]]
    setup: str  # one line for the report: how it runs
    extra_pids: Callable[[], Sequence[int]] = field(default=lambda: ())


def probe(port: int, headers: Mapping[str, str], path: str = CHAT_PATH) -> tuple[int, bytes] | None:
    """The benchmark's chat request once on a fresh connection: (status, body), None if no
    HTTP answer came."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10.0)
    try:
        conn.request(
            "POST", path, body=CHAT_BODY, headers={"Content-Type": "application/json", **headers}
        )
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def check_answer(name: str, port: int, headers: Mapping[str, str], log: Path) -> None:
    """The server relays the stub's answer with a 200, or it is skipped (its words quoted)."""
    answer = probe(port, headers)
    if answer is None:
        raise Skip(f"{name} stopped answering (log: {log})")
    status, body = answer
    if status != 200 or STUB_MARK not in body:
        excerpt = body[:300].decode(errors="replace")
        raise Skip(f"{name} answered {status}, not the stub's answer: {excerpt!r} (log: {log})")


def check_loopback_only(name: str, port: int) -> None:
    """Nothing but loopback may listen on the port: a peer bound to every address is stopped."""
    exposed = [address for address in listening_addresses(port) if not address.is_loopback]
    if exposed:
        raise Skip(f"{name} listens on {', '.join(map(str, exposed))}, not only loopback")


@contextlib.contextmanager
def peer_process(
    name: str,
    command: Sequence[str],
    port: int,
    headers: Mapping[str, str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """A peer as a child process (stopped on the way out, whatever happens), yielded once it
    answers the chat request with the stub's answer and listens on loopback only."""
    with contextlib.ExitStack() as stack:
        try:
            proc = stack.enter_context(
                serving(
                    command,
                    lambda: probe(port, headers) is not None,
                    cwd=cwd,
                    env=env,
                    log=log,
                    ready_timeout=PEER_READY_TIMEOUT_S,
                )
            )
        except (RuntimeError, TimeoutError, OSError) as exc:
            raise Skip(f"{name} did not answer: {exc} (log: {log})") from exc
        check_loopback_only(name, port)
        check_answer(name, port, headers, log)
        yield proc
