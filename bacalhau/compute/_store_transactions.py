"""The execution store's transactions: short write transactions, and deferred writes.

Every write is one short transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``). A write that may
wait is left uncommitted and committed with the next transaction, or when the event-loop turn
ends, whichever comes first: a deferred write and the transaction that follows in the same
turn cost one commit. A transaction that finds deferred writes pending joins them as a
savepoint, so its own failure rolls back only its own changes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["StoreTransactions"]


class StoreTransactions:
    """The transactions of one connection (opened in autocommit mode) used from one thread.

    ``on_failure`` is called whenever a commit fails or a transaction is rolled back: what
    the store holds may then be less than what was written through it.
    """

    def __init__(self, db: sqlite3.Connection, on_failure: Callable[[], None]) -> None:
        self._db = db
        self._on_failure = on_failure
        #: The commit of deferred writes at the end of this event-loop turn, once scheduled.
        self._flush_handle: asyncio.Handle | None = None

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Writes committed with the next transaction, at the latest when this event-loop
        turn ends (at once when no loop runs)."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield  # a failed compare-and-set changed nothing: what is pending stays pending
        finally:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
            else:
                if self._flush_handle is None:
                    self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Commit the deferred writes now, if any are pending."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()  # (harmless when it is what runs this)
            self._flush_handle = None
        if self._db.in_transaction:
            self._commit()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, committed when the block ends (with any deferred writes)
        and rolled back, alone, if it raises."""
        if self._db.in_transaction:
            # Deferred writes are pending: this one joins them, and all are committed now.
            self._db.execute("SAVEPOINT joined")
            try:
                yield
            except BaseException:
                self._on_failure()
                self._db.execute("ROLLBACK TO joined")
                self._db.execute("RELEASE joined")
                raise
            self._db.execute("RELEASE joined")
            self._commit()
            return
        # IMMEDIATE takes the write lock up front, so the compare-and-set reads what it updates.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._on_failure()
            self._db.execute("ROLLBACK")
            raise
        self._commit()

    def _commit(self) -> None:
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self._on_failure()
            raise
