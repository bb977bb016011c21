"""The agent's log: one line per happening, as key=value pairs (logfmt), on stderr.

Under systemd (JOURNAL_STREAM is set) the journal adds the time and the level, so lines carry
neither; elsewhere each line starts with an RFC 3339 time. Only the stdlib is used: the daemon
stays lean."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from stagger.core.secrets import mask_urls_in
from stagger.core.text import printable

LOGGER = "stagger.agent"


def quote(value: object) -> str:
    """A logfmt value: bare when it is one simple word, else double-quoted with escapes. A
    URL's secrets are masked and control characters escaped, whatever the field."""
    text = "" if value is None else mask_urls_in(str(value))
    if text and all(c.isalnum() or c in "-_.:/@+,=" for c in text) and "=" not in text:
        return text
    escaped = printable(text.replace("\\", "\\\\").replace('"', '\\"'))
    return f'"{escaped}"'


def kv(msg: str, fields: Mapping[str, object]) -> str:
    parts = [f"msg={quote(msg)}"]
    parts += [f"{k}={quote(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


class _Formatter(logging.Formatter):
    def __init__(self, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = record.getMessage()
        if self.journal:
            return line
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
        return f"time={stamp} level={record.levelname.lower()} {line}"


def setup(stream: object = None, level: int = logging.INFO) -> logging.Logger:
    """The agent's logger, writing to stderr (or `stream`)."""
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(_Formatter(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def event(logger: logging.Logger, msg: str, level: int = logging.INFO, /, **fields: object) -> None:
    logger.log(level, kv(msg, fields))


def why(exc: BaseException) -> str:
    """A failure as a log field: its message, or what kind it was when it has none."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
