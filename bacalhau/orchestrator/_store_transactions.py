"""The job store's transactions: one SQLite transaction at a time, held by one task, with
nested blocks as savepoints; what a transaction changes in memory (placements, history logs,
long-poll wake-ups) is kept pending and applied only when it commits, and what it changes in
the store's caches of rows is undone with it when it rolls back.

A nested block takes its savepoint lazily, at its first write: most nested blocks (an
evaluation made inside a callback, a callback inside a batch) either write nothing or are the
first thing to write in the block around them, and blocks that begin with no write between
them share one savepoint (rolling back to it undoes exactly what either wrote)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import Any, TypeVar

from bacalhau._sqlite_errors import is_transient
from bacalhau.errors import InternalError, Unavailable
from bacalhau.models import Evaluation, Execution, JobHistory, Resources
from bacalhau.orchestrator._metrics import SQLITE_TRANSACTION_SECONDS

K = TypeVar("K")
V = TypeVar("V")

#: Marks a key that was not in a cache before a write (undoing the write removes it).
_ABSENT: Any = object()
#: What a write inside an open transaction runs in: the transaction itself.
_JOINED: AbstractContextManager[None] = nullcontext()


class _Nested:
    """A nested block open in the transaction: where it rolls back to, once it wrote."""

    __slots__ = ("active", "after", "changes", "history", "notify", "owns", "savepoint", "undo")

    def __init__(self, store: StoreTransactions) -> None:
        #: The savepoint that undoes the block (None: nothing written in it yet).
        self.savepoint: str | None = None
        #: Whether the block took the savepoint (and releases it) or shares an outer one's.
        self.owns = False
        self.active = len(store._pending_active)
        self.history = len(store._pending_history)
        self.notify = set(store._pending_notify)
        self.after = len(store._after_commit)
        self.undo = len(store._undo)
        #: Rows changed on the connection when the block began (a write made without a
        #: savepoint would change it: see :meth:`StoreTransactions._open_block`).
        self.changes = store._db.total_changes


class StoreTransactions:
    """The connection and the transaction machinery every part of the job store writes
    through (:meth:`transaction`, and :meth:`_write` for one write of the store's own).

    Each part declares the state it uses; :class:`~bacalhau.orchestrator.JobStore` sets it
    all when it opens the store."""

    _db: sqlite3.Connection
    #: How many transaction or savepoint blocks are open (0: no transaction).
    _depth: int
    #: The nested blocks open in the transaction, innermost last.
    _nested: list[_Nested]
    #: Set when a nested block changed rows it could not undo alone: the transaction
    #: then rolls back whole instead of committing.
    _doomed: bool
    #: The task that opened the transaction in progress (None outside an event loop).
    _owner: asyncio.Task[Any] | None
    #: Jobs whose history waiters the open transaction wakes when it commits.
    _pending_notify: set[str]
    #: Changes to the placements in memory made by the open transaction: (node, execution,
    #: held or None once it ended), applied when it commits.
    _pending_active: list[tuple[str, str, Resources | None]]
    #: History items written by the open transaction, appended to logs when it commits.
    _pending_history: list[JobHistory]
    #: What runs once the open transaction has committed, and what instead if the writes
    #: are undone (see :meth:`after_commit`).
    _after_commit: list[tuple[Callable[[], None], Callable[[], None] | None]]
    #: What the open transaction changed in the caches of rows: (cache, key, value before
    #: or _ABSENT), undone newest first when it (or a nested block) rolls back.
    _undo: list[tuple[MutableMapping[Any, Any], Any, Any]]
    #: The database file (named in errors).
    _path: str
    #: Writes the open transaction's history items (in one statement, just before it
    #: commits: a nested block that rolls back drops its items from the pending list).
    _write_history: Callable[[], None]
    #: Execution ID -> (its row's revision before the open transaction, None for a row
    #: it creates; the execution as it is now), for the executions it changed: each row is
    #: written once, just before the commit, however many times it changed (undone with a
    #: nested block that rolls back, as the caches are).
    _dirty_executions: dict[str, tuple[int | None, Execution]]
    _write_executions: Callable[[], None]
    #: Job ID -> (its row's revision before the open transaction; its state columns as
    #: they are now), for the jobs whose state it changed: written once, as executions are.
    _dirty_jobs: dict[str, tuple[int, tuple[str, int, str, int, int, int]]]
    _write_jobs: Callable[[], None]
    #: Evaluation ID -> the evaluation as it is now, for those the open transaction created:
    #: inserted once, with their status then, when it commits.
    _new_evaluations: dict[str, Evaluation]
    _write_evaluations: Callable[[], None]
    # What a commit applies, each by the part of the store whose memory it changes.
    _flush_active: Callable[[], None]
    _flush_history: Callable[[], None]
    _flush_notify: Callable[[], None]

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes atomically; nests: an inner block commits with the outer transaction,
        and one that raises is rolled back alone (a savepoint), so a batch of callbacks
        applied in one transaction keeps each one's all-or-nothing."""
        # A class rather than a generator: a job's path opens about twenty of these.
        return _Block(self)

    def _begin(self) -> float:
        self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        self._owner = _current_task()
        self._doomed = False
        return time.perf_counter()

    def _roll_back(self, began: float) -> None:
        self._depth -= 1
        self._db.execute("ROLLBACK")
        SQLITE_TRANSACTION_SECONDS.observe(time.perf_counter() - began)
        self._forget_pending()

    def _commit(self, began: float) -> None:
        self._depth -= 1
        try:
            if self._doomed:
                raise InternalError(
                    "a nested block of the job store's transaction changed rows without a "
                    "savepoint; the transaction was rolled back",
                    hint="write through the store's _write() or _atomic()",
                    component="JobStore",
                )
            self._write_jobs()
            self._write_evaluations()
            self._write_executions()
            self._write_history()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._forget_pending()
            raise
        SQLITE_TRANSACTION_SECONDS.observe(time.perf_counter() - began)
        self._undo.clear()
        self._drop_pending_rows()
        self._flush_active()
        self._flush_history()
        self._flush_notify()
        if self._after_commit:
            after, self._after_commit = self._after_commit, []
            for fn, _ in after:
                fn()

    def after_commit(
        self, fn: Callable[[], None], *, otherwise: Callable[[], None] | None = None
    ) -> None:
        """Run ``fn`` once what the open transaction wrote has committed (at once outside a
        transaction), or ``otherwise`` instead if the writes are undone (the transaction,
        or the nested block that asked). For what must not leave before the writes it
        follows are durable: a message naming an execution the store may yet undo. Neither
        may raise: the transaction has ended when they run."""
        if self._depth:
            self._after_commit.append((fn, otherwise))
        else:
            fn()

    def _drop_after_commit(self, mark: int) -> None:
        dropped = self._after_commit[mark:]
        del self._after_commit[mark:]
        for _, otherwise in dropped:
            if otherwise is not None:
                otherwise()

    def _write(self) -> AbstractContextManager[None]:
        """One of the store's own writes: in the caller's transaction when one is open, as
        is, else in a transaction of its own. No savepoint of its own: each such write
        raises only before it changes a row (a refused transition, a compare-and-set that
        matched no row) or on an I/O error, which fails the enclosing transaction whole.
        Every statement that changes a row goes through here (or :meth:`_atomic`): a nested
        block's savepoint is taken at its first write."""
        if self._depth > 0:
            self._check_owner()
            if self._nested and self._nested[-1].savepoint is None:
                self._take_savepoint()
            # Nothing to do at the block's end: one shared do-nothing block instead of a
            # generator per write (a job makes about 20 writes).
            return _JOINED
        return self.transaction()

    def _write_at_commit(self) -> AbstractContextManager[None]:
        """A change the store keeps in memory and writes when the transaction commits
        (``_write_*``): in the caller's transaction when one is open, else in one of its
        own. It runs no statement now, so a nested block needs no savepoint for it: its
        rollback drops the change through the undo log and the pending lists."""
        if self._depth > 0:
            self._check_owner()
            return _JOINED
        return self.transaction()

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """Several writes of the store's own that stand or fall together (a later one may
        refuse after an earlier one changed a row): a transaction of their own, or a
        savepoint of their own in the caller's."""
        with self.transaction():
            if self._nested:
                self._take_savepoint()
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

    def _open_block(self) -> _Nested:
        """A nested block begins: its writes, and what they would change in memory at
        commit, are undone alone if it raises (:meth:`_undo_block`)."""
        self._check_owner()
        block = _Nested(self)
        self._nested.append(block)
        self._depth += 1
        return block

    def _close_block(self, block: _Nested) -> None:
        self._depth -= 1
        self._nested.pop()
        if block.owns:
            self._db.execute(f"RELEASE {block.savepoint}")
        elif block.savepoint is None:
            self._check_unwritten(block)

    def _undo_block(self, block: _Nested) -> None:
        self._depth -= 1
        self._nested.pop()
        if block.savepoint is not None:
            self._db.execute(f"ROLLBACK TO {block.savepoint}")
            if block.owns:
                self._db.execute(f"RELEASE {block.savepoint}")
        else:
            self._check_unwritten(block)
        del self._pending_active[block.active :]
        del self._pending_history[block.history :]
        self._pending_notify.intersection_update(block.notify)
        self._drop_after_commit(block.after)
        self._undo_to(block.undo)

    def _take_savepoint(self) -> None:
        """The innermost nested block is about to write: take its savepoint now, one for it
        and every block around it that has none yet (nothing was written between their
        starts, so one savepoint undoes any of them exactly); the outermost of them owns
        it."""
        nested = self._nested
        first = len(nested) - 1
        while first > 0 and nested[first - 1].savepoint is None:
            first -= 1
        if nested[first].savepoint is not None:
            return
        name = f"nested{first + 1}"
        self._db.execute(f"SAVEPOINT {name}")
        nested[first].owns = True
        for block in nested[first:]:
            block.savepoint = name

    def _check_unwritten(self, block: _Nested) -> None:
        """A block without a savepoint must have changed no row: one that did (a write that
        bypassed :meth:`_write`) cannot be undone alone, so its transaction is doomed."""
        if self._db.total_changes != block.changes:
            self._doomed = True

    def _forget_pending(self) -> None:
        """The transaction rolled back: nothing of it reaches memory."""
        self._pending_notify.clear()
        self._pending_active.clear()
        self._pending_history.clear()
        self._drop_after_commit(0)
        self._undo_to(0)
        self._drop_pending_rows()
        self._nested.clear()

    def _drop_pending_rows(self) -> None:
        """The transaction ended: its pending rows were written, or are undone."""
        self._dirty_executions.clear()
        self._dirty_jobs.clear()
        self._new_evaluations.clear()

    # -- caches of rows, undone with the writes that changed them --------------------------

    def _cache(self, cache: MutableMapping[K, V], key: K, value: V) -> None:
        """``cache[key] = value``, undone if the open transaction (or block) rolls back.
        Every cache of rows is changed through here or dropped from (dropping an entry is
        always safe: the row is read again)."""
        if self._depth:
            self._undo.append((cache, key, cache.get(key, _ABSENT)))
        cache[key] = value

    def _uncache(self, cache: MutableMapping[K, V], key: K) -> None:
        """Drop ``cache[key]``, put back if the open transaction (or block) rolls back."""
        before = cache.pop(key, _ABSENT)
        if self._depth and before is not _ABSENT:
            self._undo.append((cache, key, before))

    def _cache_recent(self, cache: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
        """:meth:`_cache` into a bounded cache, least recently used dropped first."""
        self._cache(cache, key, value)
        cache.move_to_end(key)
        if len(cache) > limit:
            cache.popitem(last=False)

    def _undo_to(self, mark: int) -> None:
        undo = self._undo
        while len(undo) > mark:
            cache, key, before = undo.pop()
            if before is _ABSENT:
                cache.pop(key, None)
            else:
                cache[key] = before


class _Block:
    """One ``with store.transaction():`` block: the transaction itself, or a block nested
    in it."""

    __slots__ = ("_began", "_nested", "_store")

    def __init__(self, store: StoreTransactions) -> None:
        self._store = store
        self._nested: _Nested | None = None
        self._began = 0.0

    def __enter__(self) -> None:
        store = self._store
        try:
            if store._depth > 0:
                self._nested = store._open_block()
            else:
                self._began = store._begin()
        except sqlite3.OperationalError as err:
            raise_if_transient(err, store._path)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store, nested = self._store, self._nested
        try:
            if nested is not None:
                if exc_type is None:
                    store._close_block(nested)
                else:
                    store._undo_block(nested)
            elif exc_type is None:
                store._commit(self._began)
            else:
                store._roll_back(self._began)
        except sqlite3.OperationalError as err:
            raise_if_transient(err, store._path)
            raise
        if isinstance(exc, sqlite3.OperationalError):
            raise_if_transient(exc, store._path)  # (else the body's error goes on as it is)


def raise_if_transient(err: sqlite3.OperationalError, path: str) -> None:
    """Raise a failed write of the job store at ``path`` as what it is to callers when its
    cause may pass: a retryable :class:`Unavailable` naming the store and the cause (so a
    compute node's callback outbox or an API client retries rather than drops the request).
    Return when it is a bug, for the caller to raise it as it is."""
    if not is_transient(err):
        return
    raise Unavailable(
        f"the job store cannot write for now ({err}): {path}",
        hint="the requester's data dir may be full or unwritable; free space there, and "
        "retry: nothing was recorded of this request",
        component="JobStore",
    ) from err


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        return None
