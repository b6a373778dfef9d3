"""Which SQLite failures may pass: the stores' callers retry these rather than give up."""

from __future__ import annotations

import sqlite3

__all__ = ["is_transient"]

#: SQLite's primary result codes for a store that cannot write for now (a full disk, an I/O
#: error, a lock held elsewhere, a file it cannot open or write): the write may succeed once
#: the operator acts.
_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)


def is_transient(err: sqlite3.Error) -> bool:
    """Whether ``err`` says the store cannot write for now, rather than that a statement is
    wrong (a bug)."""
    return (getattr(err, "sqlite_errorcode", -1) & 0xFF) in _TRANSIENT
