"""Regular expressions a job gives (an ``s3`` input's ``Filter``, its ``Partition.Pattern``),
read as Bacalhau reads them: Go's syntax, matched by RE2 in time linear in the input.

Python's own ``re`` backtracks: a pattern such as ``(a+)+$`` takes exponential time on a key
it nearly matches, and a job could hold a compute node's download thread forever with one.
RE2 (Google's, the engine Go's ``regexp`` follows) refuses what it cannot match in linear
time (backreferences, lookarounds), which Go refuses too.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["GoRegexError", "compile_go"]


class GoRegexError(ValueError):
    """A pattern that is not a valid (Go/RE2) regular expression."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error is raised; RE2 need not print it as well
    return options


_OPTIONS = _options()


def compile_go(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (``search``, ``group``, ``groups`` as ``re`` has them);
    raises :class:`GoRegexError` saying what is wrong with it."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        reason = err.args[0] if err.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise GoRegexError(str(reason)) from None
