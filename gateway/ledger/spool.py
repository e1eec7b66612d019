"""The local durable spool: ledger events the Redis stream could not take at the end of a request
(one line each, appended and fsynced, one file per process), replayed into the stream when Redis
answers again. Replays are idempotent: the ledger writer inserts each generation id once.

Not a queue of its own: nothing reads it but the replay; not used without Redis (the in-process
queue never refuses an event).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Protocol

import msgspec

from gateway.keys.limiter import Settlement
from gateway.ledger.codec import EventDecodeError, decode_event, encode_event
from gateway.ledger.events import GenerationEvent
from gateway.ledger.stream import LedgerUnavailable, RedisStreamLedger
from gateway.resp import RespError
from providers.background import stop_task

log = logging.getLogger("gateway.ledger.spool")

REPLAY_INTERVAL_S = 0.5  # how often a non-empty spool tries the stream again
SUFFIX = ".spool"


class Settler(Protocol):
    """Sends a spooled settlement again (`RedisLimiter.resettle`), at most once per generation."""

    async def resettle(self, generation_id: str, settlement: Settlement) -> None: ...


class _Line(msgspec.Struct, array_like=True):
    """One spooled generation: its ledger event, and its settlement when that failed too."""

    event: msgspec.Raw
    settlement: Settlement | None = None


class SpoolFull(LedgerUnavailable):
    """The spool can't take another event: requests are refused before any upstream is called."""

    code = "ledger_spool_full"


class Spool:
    """This process's spool file, locked for as long as the process holds it; files left by
    processes that died (unlocked) are replayed too, then removed."""

    def __init__(self, directory: Path, max_bytes: int, stream_key: str = "") -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        # Files are named after the stream they belong to: only those are replayed into it.
        self.stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stream_key) + "~"
        unique = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.path = directory / f"{self.stem}{unique}{SUFFIX}"
        self.depth = 0  # events in this process's file
        self.size = 0  # its bytes
        self.broken: str | None = None  # why the file can't be written, if it can't
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()  # appends run in worker threads
        self._replaying = asyncio.Lock()
        self.settler: Settler | None = None  # set once the key limiter exists

    # -- the request path

    @property
    def accepting(self) -> bool:
        """Whether new requests are admitted (the spool has room and can be written)."""
        return self.broken is None and self.size < self.max_bytes

    def check_accepting(self) -> None:
        if self.broken is not None:
            raise SpoolFull(f"the ledger spool is unwritable ({self.broken}); try again later")
        if self.size >= self.max_bytes:
            raise SpoolFull("the ledger spool is full; try again later")

    async def append(self, event: GenerationEvent, settlement: Settlement | None = None) -> None:
        """Keep `event` on disk (fsynced) before the answer goes out; raises `SpoolFull` only
        when the file can't be written. A full spool refuses new requests (`check_accepting`),
        not the events of requests already admitted: it holds at most `max_bytes` plus the
        events of the requests in flight when it filled."""
        line = msgspec.json.encode(_Line(msgspec.Raw(encode_event(event)), settlement)) + b"\n"
        await asyncio.to_thread(self._append, line)
        log.warning("ledger event spooled", extra={"generation_id": event.id})

    def _append(self, line: bytes) -> None:
        with self._lock:
            if self.broken is not None:
                raise SpoolFull(f"the ledger spool is unwritable ({self.broken})")
            try:
                file = self._open()
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
            except OSError as exc:
                self.broken = type(exc).__name__
                log.error("ledger spool unwritable", extra={"path": str(self.path)})
                raise SpoolFull(f"the ledger spool is unwritable ({self.broken})") from exc
            self.depth += 1
            self.size += len(line)

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            file = self.path.open("ab")
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file = file
        return self._file

    # -- replay

    async def replay(self, stream: RedisStreamLedger) -> int:
        """Send every spooled event (this process's and dead processes') to the stream; stops
        at the first refusal. Returns the events sent."""
        async with self._replaying:
            sent = await self._replay_own(stream)
            for path in sorted(self.directory.glob(f"{glob.escape(self.stem)}*{SUFFIX}")):
                if path != self.path:
                    sent += await self._replay_orphan(path, stream)
            return sent

    async def _replay_own(self, stream: RedisStreamLedger) -> int:
        if not self.depth:
            return 0
        with self._lock:  # appends wait: the file is rewritten below
            lines = self.path.read_bytes().splitlines()
        sent = await _send(lines, stream, self.settler)
        with self._lock:
            # What was appended meanwhile stays, after what was not sent.
            current = self.path.read_bytes().splitlines()
            rest = current[sent:]
            self._rewrite(rest)
        return sent

    def _rewrite(self, lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if self._file is not None:
            self._file.close()
            self._file = None
        os.replace(temporary, self.path)
        self.depth, self.size = len(lines), len(data)
        if not lines:
            self.path.unlink(missing_ok=True)
        else:
            self._open()

    async def _replay_orphan(self, path: Path, stream: RedisStreamLedger) -> int:
        try:
            file = path.open("r+b")
        except OSError:
            return 0
        with file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # its process is alive and replays it itself
            lines = file.read().splitlines()
            sent = await _send(lines, stream, self.settler)
            if sent == len(lines):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                file.seek(0)
                file.truncate()
                file.write(b"".join(line + b"\n" for line in lines[sent:]))
                file.flush()
                os.fsync(file.fileno())
        if sent:
            log.warning("spool of a departed process replayed", extra={"path": str(path)})
        return sent

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def _send(lines: list[bytes], stream: RedisStreamLedger, settler: Settler | None) -> int:
    """XADD the lines in order (and settle again what failed to settle); the count sent
    before the first refusal."""
    sent = 0
    for line in lines:
        if line.strip():
            try:
                entry = msgspec.json.decode(line, type=_Line)
                event = decode_event(bytes(entry.event))
            except (msgspec.DecodeError, EventDecodeError):
                log.error("unreadable spool line skipped", extra={"line": line[:200].decode()})
            else:
                try:
                    await stream.emit(event)
                    if entry.settlement is not None and settler is not None:
                        await settler.resettle(event.id, entry.settlement)
                except (LedgerUnavailable, RespError):
                    return sent
        sent += 1
    return sent


async def _replay_forever(spool: Spool, stream: RedisStreamLedger) -> None:
    while True:
        await asyncio.sleep(REPLAY_INTERVAL_S)
        try:
            sent = await spool.replay(stream)
        except Exception:  # the loop must outlive any one bad replay; it is logged
            log.exception("replaying the ledger spool failed; will retry")
            continue
        if sent:
            log.warning("spooled ledger events replayed", extra={"n": sent})


@asynccontextmanager
async def open_spool(
    directory: Path, max_bytes: int, stream: RedisStreamLedger
) -> AsyncIterator[Spool]:
    """The spool and its replay task; on the way out a last replay is tried."""
    spool = Spool(directory, max_bytes, stream.key)
    with contextlib.suppress(OSError):
        await spool.replay(stream)  # what a previous process left
    task = asyncio.create_task(_replay_forever(spool, stream), name="ledger-spool-replay")
    try:
        yield spool
    finally:
        await stop_task(task)
        with contextlib.suppress(OSError):
            await spool.replay(stream)
        spool.close()
