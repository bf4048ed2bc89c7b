"""Secrets out of the server's log: the access log writes each request's path and query string, and a client
that puts its API key in the URL (``?api_key=...``) would leave it there. While the app runs, a filter on
uvicorn's access logger (and on the API's error log) passes every logged value through the query log's token
``Redactor`` first."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sopilot.index.querylog import Redactor

REDACTED_LOGGERS = ("uvicorn.access", "sopilot.api.errors")


class RedactingFilter(logging.Filter):
    """Redacts tokens in a record's message and its text arguments; never drops a record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) if isinstance(a, str) else a for a in record.args)
        return True


@contextmanager
def redacted_server_log() -> Iterator[None]:
    """The filter on the server's loggers for as long as the block runs (the app's lifespan)."""
    installed = RedactingFilter(Redactor(["token"]))
    loggers = [logging.getLogger(name) for name in REDACTED_LOGGERS]
    for logger in loggers:
        logger.addFilter(installed)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(installed)
