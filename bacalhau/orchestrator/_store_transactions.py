"""The job store's transactions: one SQLite transaction at a time, held by one task, with
nested blocks as savepoints; what a transaction changes in memory (placements, history logs,
long-poll wake-ups) is kept pending and applied only when it commits."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bacalhau.errors import InternalError
from bacalhau.models import JobHistory, Resources
from bacalhau.orchestrator._metrics import SQLITE_TRANSACTION_SECONDS


class StoreTransactions:
    """The connection and the transaction machinery every part of the job store writes
    through (:meth:`transaction`, and :meth:`_write` for one write of the store's own).

    Each part declares the state it uses; :class:`~bacalhau.orchestrator.JobStore` sets it
    all when it opens the store."""

    _db: sqlite3.Connection
    #: How many transaction or savepoint blocks are open (0: no transaction).
    _depth: int
    #: The task that opened the transaction in progress (None outside an event loop).
    _owner: asyncio.Task[Any] | None
    #: Jobs whose history waiters the open transaction wakes when it commits.
    _pending_notify: set[str]
    #: Changes to the placements in memory made by the open transaction: (node, execution,
    #: held or None once it ended), applied when it commits.
    _pending_active: list[tuple[str, str, Resources | None]]
    #: History items written by the open transaction, appended to logs when it commits.
    _pending_history: list[JobHistory]
    # What a commit applies, each by the part of the store whose memory it changes.
    _flush_active: Callable[[], None]
    _flush_history: Callable[[], None]
    _flush_notify: Callable[[], None]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes atomically; nests: an inner block commits with the outer transaction,
        and one that raises is rolled back alone (a savepoint), so a batch of callbacks
        applied in one transaction keeps each one's all-or-nothing."""
        if self._depth > 0:
            self._check_owner()
            with self._savepoint():
                yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        began = time.perf_counter()
        self._depth += 1
        self._owner = _current_task()
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
                SQLITE_TRANSACTION_SECONDS.observe(time.perf_counter() - began)
                self._pending_notify.clear()
                self._pending_active.clear()
                self._pending_history.clear()
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")
            SQLITE_TRANSACTION_SECONDS.observe(time.perf_counter() - began)
            self._flush_active()
            self._flush_history()
            self._flush_notify()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One of the store's own writes: in the caller's transaction when one is open, as
        is, else in a transaction of its own. No savepoint of its own: each such write
        raises only before it changes a row (a refused transition, a compare-and-set that
        matched no row) or on an I/O error, which fails the enclosing transaction whole."""
        if self._depth > 0:
            self._check_owner()
            yield
            return
        with self.transaction():
            yield

    def _check_owner(self) -> None:
        """Refuse to join a transaction another task holds open: its writes would commit or
        roll back with that task's, whatever this one does. Work inside a transaction must
        not suspend; this makes a change that breaks that rule fail loudly, not silently."""
        if self._owner is not _current_task():
            raise InternalError(
                "the job store's transaction is held by another task",
                hint="a write inside a store transaction awaited something that suspended",
                component="JobStore",
            )

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        """A nested block: its writes, and what they would change in memory at commit, are
        undone alone if it raises."""
        name = f"nested{self._depth}"
        marks = (len(self._pending_active), len(self._pending_history))
        notify = set(self._pending_notify)
        self._db.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            del self._pending_active[marks[0] :]
            del self._pending_history[marks[1] :]
            self._pending_notify.intersection_update(notify)
            raise
        self._depth -= 1
        self._db.execute(f"RELEASE {name}")


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        return None
