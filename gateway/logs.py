"""Logging setup: one line per record, with the structured `extra={...}` fields appended.

Secrets never reach here: callers pass ids and counts, not keys.
"""

from __future__ import annotations

import logging

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class FieldsFormatter(logging.Formatter):
    """`... message key=value key=value` for every non-standard attribute of the record."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        if not fields:
            return line
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        head, sep, tail = line.partition("\n")  # keep tracebacks after the fields
        return f"{head} {extra}{sep}{tail}"


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(FieldsFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
