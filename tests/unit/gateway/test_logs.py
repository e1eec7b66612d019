from __future__ import annotations

import logging

from gateway.logs import FORMAT, FieldsFormatter


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "t", "levelname": "WARNING", "msg": msg})
    record.__dict__.update(extra)
    return record


def test_structured_fields_are_printed_after_the_message() -> None:
    line = FieldsFormatter(FORMAT).format(_record("breaker open", endpoint="m@groq", until=2))
    assert line.endswith("WARNING t breaker open endpoint=m@groq until=2")


def test_plain_records_are_unchanged() -> None:
    assert FieldsFormatter(FORMAT).format(_record("hello")).endswith("WARNING t hello")
