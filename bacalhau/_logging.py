"""A node's log output, as Bacalhau's ``Logging.Level`` and ``Logging.Mode`` ask.

Levels are Bacalhau's (zerolog's) names: ``trace`` and ``debug`` log everything, ``info``,
``warn``, ``error``, and ``fatal``/``panic`` only what makes the node stop. Modes:
``default`` writes ``time level logger: message`` lines, ``json`` one JSON object a line
(``time``, ``level``, ``logger``, ``message``, and ``error`` with a traceback), ``cmd`` the
message alone. Everything goes to stderr, as before: stdout carries the node's own status
lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

#: Bacalhau's level names -> the standard library's levels.
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}
#: The level names zerolog prints, which log tooling that reads Bacalhau's expects.
_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": _NAMES.get(record.levelno, record.levelname.lower()),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def log_handler(mode: str) -> logging.Handler:
    """A handler writing to stderr in ``mode`` (``default``, ``json`` or ``cmd``)."""
    handler = logging.StreamHandler(sys.stderr)
    if mode == "json":
        handler.setFormatter(_JsonFormatter())
    elif mode == "cmd":
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def log_level(level: str) -> int:
    """The standard library's level for one of Bacalhau's level names (warn if unknown)."""
    return _LEVELS.get(level, logging.WARNING)


def configure_logging(level: str, mode: str) -> None:
    """Send the process's log records at ``level`` or above to stderr, formatted by
    ``mode``; replaces whatever handlers the root logger had (call once, at start)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(log_handler(mode))
    root.setLevel(log_level(level))
