"""Capture the app's log records in a test.

The app configures the root logger when it is created (`configure_logging` replaces the
root's handlers, pytest's capture included, and sets LOG_LEVEL), so a test that builds an app
itself listens on the `app` logger instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def app_logs(level: int = logging.INFO, name: str = "app") -> Iterator[list[logging.LogRecord]]:
    """The records of `name` (and below) at `level` and above, logged inside the block."""
    logger = logging.getLogger(name)
    handler, previous = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def lines(records: list[logging.LogRecord]) -> list[str]:
    return [record.getMessage() for record in records]
