"""The execution store's transactions: short write transactions, and deferred writes.

Every write is one short transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), or a single
statement (which SQLite commits on its own). A change that may wait is kept in memory
(:class:`~bacalhau.compute._pending_rows.PendingRows`) and written by the next transaction,
or when the event-loop turn ends, whichever comes first: a deferred change and the
transaction that follows in the same turn cost one commit, and a change that replaces a
pending one writes its row once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bacalhau.compute._metrics import SQLITE_TRANSACTION_SECONDS
from bacalhau.compute._pending_rows import PendingRows

__all__ = ["StoreTransactions"]

_log = logging.getLogger(__name__)


class StoreTransactions:
    """The transactions of one connection (opened in autocommit mode) used from one thread.

    ``on_failure`` is called whenever a commit fails or a transaction is rolled back: what
    the store holds may then be less than what was written through it.
    """

    def __init__(
        self, db: sqlite3.Connection, pending: PendingRows, on_failure: Callable[[], None]
    ) -> None:
        self._db = db
        self._pending = pending
        self._on_failure = on_failure
        #: The write of pending changes at the end of this event-loop turn, once scheduled.
        self._flush_handle: asyncio.Handle | None = None

    def schedule_flush(self) -> None:
        """A change was left pending: write it when this event-loop turn ends (at once when
        no loop runs), unless a transaction writes it first."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_handle is None:
            self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the pending changes now, if any. A failure is logged: the changes are lost
        (the store reads the rows again), as a failed commit loses its writes."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()  # (harmless when it is what runs this)
            self._flush_handle = None
        if not self._pending:
            return
        try:
            if len(self._pending) == 1 and not self._db.in_transaction:
                # One change: one statement, which SQLite commits on its own.
                self._pending.write(self._db)
                self._pending.clear()
                return
            with self.transaction():
                pass  # (it writes what is pending)
        except Exception:
            _log.exception("writing deferred state changes failed")
            self._pending.clear()
            self._on_failure()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction with the pending changes, committed when the block ends and
        rolled back, alone, if it raises (the pending changes then stay pending)."""
        if self._db.in_transaction:
            # Inside another transaction: this one is a savepoint of it.
            self._db.execute("SAVEPOINT nested")
            try:
                yield
            except BaseException:
                self._on_failure()
                self._db.execute("ROLLBACK TO nested")
                self._db.execute("RELEASE nested")
                raise
            self._db.execute("RELEASE nested")
            return
        # IMMEDIATE takes the write lock up front, so the compare-and-set reads what it updates.
        self._db.execute("BEGIN IMMEDIATE")
        began = time.perf_counter()
        if self._pending:
            try:
                self._pending.write(self._db)
            except Exception:
                # Not this transaction's fault: it goes on without them.
                _log.exception("writing deferred state changes failed")
                self._pending.clear()
                self._on_failure()
                self._db.execute("ROLLBACK")
                self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._on_failure()
            self._db.execute("ROLLBACK")
            SQLITE_TRANSACTION_SECONDS.observe(time.perf_counter() - began)
            raise
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self._on_failure()
            raise
        finally:
            SQLITE_TRANSACTION_SECONDS.observe(time.perf_counter() - began)
        self._pending.clear()
