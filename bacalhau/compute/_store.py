"""The compute node's execution store: SQLite (WAL), compare-and-set on revision.

One connection, used from the event loop: every write is one short transaction, and with
``synchronous=NORMAL`` in WAL mode a commit does not wait for the disk, so a write costs tens
of microseconds. The store also keeps the outbox of callbacks for the requester; a state
change and the callback announcing it are written in the same transaction, so a crash can
never leave a finished execution unreported. The writes that may wait (Running, and
Publishing, which a restart treats as Running) are committed with the next write of the same
event-loop turn, or at its end.

Its parts: the tables (``_store_schema``), the record and its row (``_store_rows``), the
transactions and deferred writes (``_store_transactions``), the callback outbox's rows
(``_outbox_table``) and the executions kept decoded (``_execution_memo``). This module holds
what ties them together: creating executions, their state changes, restart recovery,
retention and the kept modules.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from bacalhau._json import dumps_text
from bacalhau._wal_checkpoints import BackgroundCheckpoints
from bacalhau.compute import _outbox_table as outbox_table
from bacalhau.compute._callbacks import Callback
from bacalhau.compute._errors import ExecutionInterrupted
from bacalhau.compute._events import TOPIC_RESTART, failure_event
from bacalhau.compute._execution_memo import ExecutionMemo
from bacalhau.compute._metrics import EXECUTIONS_FINISHED
from bacalhau.compute._module_memo import ModuleMemo
from bacalhau.compute._outbox_table import OutboxEntry
from bacalhau.compute._pending_rows import UPDATE_ROW, PendingRows, row_update
from bacalhau.compute._store_rows import (
    COLUMNS,
    SELECT,
    STATE_COLUMNS,
    TERMINAL,
    LocalExecution,
    decode_row,
    record_of,
)
from bacalhau.compute._store_schema import connect, create_schema
from bacalhau.compute._store_transactions import StoreTransactions
from bacalhau.errors import (
    ExecutionNotFound,
    InternalError,
    InvalidRequest,
    RevisionConflict,
    Unavailable,
)
from bacalhau.models import (
    ComputeFailure,
    Execution,
    LocalExecutionState,
    RunCommandResult,
    SpecConfig,
    check_local_transition,
    entry_module_url,
    is_shared_module_url,
    module_digest,
    module_reference,
    now_ns,
    set_entry_module_url,
)

# LocalExecution and OutboxEntry are imported from here by the package and its modules.
__all__ = ["INITIAL_STATES", "ExecutionStore", "LocalExecution", "OutboxEntry"]

#: States an execution may be created in (bidding decides which).
INITIAL_STATES = frozenset(
    {
        LocalExecutionState.CREATED,
        LocalExecutionState.BID_ACCEPTED,
        LocalExecutionState.BID_REJECTED,
    }
)

#: States in which work was under way when the node stopped: it cannot be resumed.
_INTERRUPTED = (LocalExecutionState.RUNNING, LocalExecutionState.PUBLISHING)


class ExecutionStore:
    """Local executions and the callback outbox, in one SQLite file.

    Every state change is checked against the local state machine
    (:func:`~bacalhau.models.check_local_transition`) and applied only if the record's revision
    is still the one the caller read (:class:`~bacalhau.errors.RevisionConflict` otherwise).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        #: Unfinished executions kept decoded, with their latest record: read without a query.
        self._decoded = ExecutionMemo()
        #: The inline modules last read or kept, as the objects handed out (see ModuleMemo).
        self._modules = ModuleMemo()
        #: Executions whose callbacks are kept here too as they are committed, for an ask's
        #: answer that waits for them (see :meth:`note_callbacks`).
        self._noted: dict[str, list[OutboxEntry]] = {}
        try:
            self._db = connect(path)
            # A failed write may leave the store behind the kept records: read them again.
            #: Changes into Running and Publishing not yet written (see ``_pending_rows``).
            self._pending = PendingRows()
            self._writes = StoreTransactions(
                self._db, self._pending, on_failure=self._decoded.forget_records
            )
            with self._writes.transaction():
                create_schema(self._db, path)
            # Checkpoints made off the event loop (see _wal_checkpoints).
            self._checkpoints = BackgroundCheckpoints(path)
            self._checkpoints.take_over(self._db)
        except sqlite3.Error as err:
            raise Unavailable(
                f"cannot open the execution store {path}: {err}", component="ExecutionStore"
            ) from err

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        self._writes.flush()
        self._checkpoints.close()
        self._db.close()

    def __enter__(self) -> ExecutionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- executions -------------------------------------------------------------------------

    def create(
        self,
        execution: Execution,
        *,
        requester_id: str,
        state: LocalExecutionState = LocalExecutionState.CREATED,
        message: str = "",
        callback: Callback | None = None,
    ) -> LocalExecution:
        """Store a new execution (with its job), and optionally queue a callback with it.

        A large inline entry module is kept once for every execution that runs it (see
        :meth:`module`), not in each execution's document. Raises :class:`RevisionConflict`
        if the execution already exists.
        """
        if execution.job is None:
            raise InvalidRequest(f"execution {execution.id} arrived without its job")
        if state not in INITIAL_STATES:
            raise InvalidRequest(f"an execution cannot start in state {state.value}")
        now = now_ns()
        record = LocalExecution(
            execution=execution,
            requester_id=requester_id,
            state=state,
            revision=1,
            message=message,
            create_time=now,
            modify_time=now,
        )
        doc = execution.to_dict(v152=True)
        url = entry_module_url(execution.job)
        module = url if is_shared_module_url(url) else None
        digest = module_digest(module) if module is not None else None
        if digest is not None:
            set_entry_module_url(doc["Job"], module_reference(digest))
        body = dumps_text(doc)
        # A module known to be kept needs no write: while this execution names it, pruning
        # leaves it, and once the execution is pruned (created before the cut-off) its use
        # time is before the cut-off whether or not this create recorded it.
        kept = digest is not None and self._modules.url(digest) is not None
        with self._writes.transaction():
            if module is not None and digest is not None and not kept:
                self._keep_module(digest, module, now)
            try:
                self._db.execute(
                    f"INSERT INTO executions ({COLUMNS}, module) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        execution.id,
                        execution.job_id,
                        requester_id,
                        state.value,
                        1,
                        message,
                        body,
                        None,
                        None,
                        now,
                        now,
                        digest,
                    ),
                )
            except sqlite3.IntegrityError:
                raise RevisionConflict(
                    f"execution {execution.id} already exists", component="ExecutionStore"
                ) from None
            if callback is not None:
                seq = outbox_table.enqueue(self._db, requester_id, callback, now)
                queued = OutboxEntry(seq, requester_id, execution.id, callback, now)
        if callback is not None:
            self._note(queued)  # committed
        if module is not None and digest is not None:
            self._modules.remember(digest, module)  # committed: known to be kept
        if state.is_terminal():
            EXECUTIONS_FINISHED.labels(state=state.value).inc()
        else:
            self._decoded.remember(execution, len(body) + len(module or ""), record)
        return record

    def find(self, execution_id: str) -> LocalExecution | None:
        # Every write to an execution goes through this store, which keeps the record it
        # wrote: an unfinished execution's record is known without a query.
        kept = self._decoded.record(execution_id) or self._pending.latest(execution_id)
        if kept is not None:
            return kept
        decoded = self._decoded.get(execution_id)
        if decoded is not None:
            row = self._db.execute(
                f"SELECT {STATE_COLUMNS} FROM executions WHERE id = ?", (execution_id,)
            ).fetchone()
            if row is None:
                self._decoded.forget(execution_id)
                return None
            record = record_of(decoded, row)
            self._decoded.update(record)
            return record
        row = self._db.execute(f"{SELECT} WHERE id = ?", (execution_id,)).fetchone()
        if row is None:
            return None
        record = decode_row(row)
        if not record.state.is_terminal():
            size = len(str(row[6])) + len(str(row[11] or ""))
            self._decoded.remember(record.execution, size, record)
        return record

    def state(self, execution_id: str) -> LocalExecutionState | None:
        """The execution's state (None: this node does not hold it), without reading the
        rest of its record: for callers that only ask whether it exists or has ended."""
        pending = self._pending.latest(execution_id)
        if pending is not None:
            return pending.state
        row = self._db.execute(
            "SELECT state FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        return LocalExecutionState(row[0]) if row is not None else None

    def get(self, execution_id: str) -> LocalExecution:
        record = self.find(execution_id)
        if record is None:
            raise ExecutionNotFound(
                f"execution {execution_id} not found on this node", component="ExecutionStore"
            )
        return record

    def executions(
        self, *, states: Collection[LocalExecutionState] | None = None
    ) -> list[LocalExecution]:
        """Executions (oldest first), optionally only those in ``states``."""
        self._writes.flush()  # what SQL reads must hold every change
        if states is None:
            rows = self._db.execute(f"{SELECT} ORDER BY create_time, id").fetchall()
        else:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(
                f"{SELECT} WHERE state IN ({marks}) ORDER BY create_time, id",
                [s.value for s in states],
            ).fetchall()
        return [decode_row(row) for row in rows]

    def transition(
        self,
        record: LocalExecution,
        state: LocalExecutionState,
        *,
        message: str | None = None,
        published_result: SpecConfig | None = None,
        run_output: RunCommandResult | None = None,
        callback: Callback | None = None,
        logs: tuple[bytes, bytes] | None = None,
        kept: bytes | None = None,
        defer: bool = False,
    ) -> LocalExecution:
        """Move ``record`` to ``state`` if nobody changed it since it was read.

        Raises :class:`~bacalhau.errors.InvalidTransition` for a move the state machine
        forbids and :class:`RevisionConflict` when the stored revision moved on.

        ``defer`` (only into Running, from BidAccepted, and between Running and Publishing)
        lets the write be committed with the next one made in this event-loop turn, or at
        the turn's end: a run or a publish that ends within the turn then costs one commit,
        not two or three. A crash before the commit leaves a state a restart treats alike
        (Running for Publishing), or BidAccepted for Running: the execution then runs again
        after the restart, as one that had not started; it had not got past the turn that
        started it, so nothing of it left the node. Reads see the deferred state at once.

        ``logs`` (stdout, stderr) are kept with a final state, in its transaction, for
        :meth:`kept_logs`: the execution's results folder may then be reused. So are
        ``kept``, the published results the store keeps (:meth:`kept_results`).
        """
        check_local_transition(record.state, state)
        if defer and not (
            state in _INTERRUPTED
            and (record.state in _INTERRUPTED or record.state is LocalExecutionState.BID_ACCEPTED)
        ):
            raise InternalError(
                f"a move from {record.state.value} to {state.value} cannot be deferred",
                component="ExecutionStore",
            )
        base = self._pending.base(record)  # (a stale record raises here)
        updated = replace(
            record,
            state=state,
            revision=record.revision + 1,
            message=record.message if message is None else message,
            published_result=published_result or record.published_result,
            run_output=run_output or record.run_output,
            modify_time=max(now_ns(), record.modify_time + 1),
        )
        if defer and callback is None and logs is None and kept is None:
            # Nothing else to write with it: kept in memory, written by the next write (this
            # one's replacement, most often) or at the end of the turn.
            self._pending.put(base, updated)
            self._writes.schedule_flush()
            self._remember(updated)
            return updated
        replaced = self._pending.take(record.id)  # this write replaces it
        # Without a callback (or other changes pending), the compare-and-set is one
        # statement and so its own transaction (the connection autocommits): BEGIN and
        # COMMIT around it would only add round trips.
        writing: AbstractContextManager[None]
        if (
            callback is not None
            or logs is not None
            or kept is not None
            or self._pending
            or self._db.in_transaction
        ):
            writing = self._writes.transaction()  # (which also writes what is pending)
        else:
            writing = nullcontext()
        try:
            with writing:
                if self._db.execute(UPDATE_ROW, row_update(updated, base)).rowcount != 1:
                    self._changed_under(record)
                if callback is not None:
                    now = updated.modify_time
                    seq = outbox_table.enqueue(self._db, record.requester_id, callback, now)
                    queued = OutboxEntry(seq, record.requester_id, record.id, callback, now)
                if logs is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO logs (execution_id, stdout, stderr) "
                        "VALUES (?, ?, ?)",
                        (record.id, *logs),
                    )
                if kept is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO kept_results (execution_id, data) VALUES (?, ?)",
                        (record.id, kept),
                    )
        except BaseException:
            if replaced is not None:
                self._pending.put(*replaced)  # still to be written
                self._writes.schedule_flush()
            raise
        if callback is not None:
            self._note(queued)
        if state.is_terminal():
            EXECUTIONS_FINISHED.labels(state=state.value).inc()
        self._remember(updated)
        return updated

    def _remember(self, updated: LocalExecution) -> None:
        if updated.state.is_terminal():
            self._decoded.forget(updated.id)  # rarely read again
        else:
            self._decoded.update(updated)

    def _changed_under(self, record: LocalExecution) -> NoReturn:
        """A compare-and-set of ``record``'s row matched nothing: say why."""
        current = self.find(record.id)
        if current is None:
            raise ExecutionNotFound(
                f"execution {record.id} not found on this node", component="ExecutionStore"
            )
        raise RevisionConflict(
            f"execution {record.id} changed concurrently: expected revision "
            f"{record.revision} ({record.state.value}), found {current.revision} "
            f"({current.state.value})",
            component="ExecutionStore",
        )

    def recover_interrupted(self, *, message: str) -> list[LocalExecution]:
        """Fail the executions a crash left running, queueing a failure callback for each.

        Executions still bidding (``Created``) or waiting for capacity (``BidAccepted``) are
        left alone: nothing of them was lost and the node can carry on with them.
        """
        failed: list[LocalExecution] = []
        for record in self.executions(states=_INTERRUPTED):
            err = ExecutionInterrupted(message)
            event = failure_event(err, topic=TOPIC_RESTART)
            callback = ComputeFailure(
                execution_id=record.id,
                job_id=record.job_id,
                node_id=record.execution.node_id,
                event=event,
            )
            failed.append(
                self.transition(
                    record, LocalExecutionState.FAILED, message=message, callback=callback
                )
            )
        return failed

    def prune(self, *, finished_before_ns: int, limit: int = 200) -> list[str]:
        """Forget up to ``limit`` terminal executions older than the cut-off (whose callbacks
        went out), oldest first: one short transaction, so a backlog is worked off over
        several calls instead of stalling the node's event loop in one. Modules no execution
        runs any more and unused since the cut-off go with them."""
        marks = ",".join("?" * len(TERMINAL))
        with self._writes.transaction():
            rows = self._db.execute(
                f"SELECT id FROM executions WHERE state IN ({marks}) AND modify_time < ? "
                "AND id NOT IN (SELECT execution_id FROM outbox) ORDER BY modify_time LIMIT ?",
                (*TERMINAL, finished_before_ns, limit),
            ).fetchall()
            ids = [row[0] for row in rows]
            self._db.executemany("DELETE FROM executions WHERE id = ?", [(i,) for i in ids])
            self._db.executemany("DELETE FROM logs WHERE execution_id = ?", [(i,) for i in ids])
            self._db.executemany(
                "DELETE FROM kept_results WHERE execution_id = ?", [(i,) for i in ids]
            )
            for execution_id in ids:
                self._decoded.forget(execution_id)
            pruned = self._db.execute(
                "DELETE FROM modules WHERE used_time < ? AND NOT EXISTS"
                " (SELECT 1 FROM executions WHERE executions.module = modules.hash)",
                (finished_before_ns,),
            )
            if pruned.rowcount:
                self._modules.clear()
        return ids

    def kept_logs(self, execution_id: str) -> tuple[bytes, bytes] | None:
        """The stdout and stderr a finished execution kept here (see :meth:`transition`);
        None when it kept none (its results folder holds them, or it was forgotten)."""
        row = self._db.execute(
            "SELECT stdout, stderr FROM logs WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        return (bytes(row[0]), bytes(row[1])) if row is not None else None

    def kept_results(self, execution_id: str) -> bytes | None:
        """The published results a finished execution kept here (see :meth:`transition`);
        None when it kept none (they were archived, or it was forgotten)."""
        row = self._db.execute(
            "SELECT data FROM kept_results WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        return bytes(row[0]) if row is not None else None

    def vacuum_step(self, pages: int) -> None:
        """Give up to ``pages`` free pages back to the file system (incremental vacuum)."""
        self._db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()

    # -- modules ----------------------------------------------------------------------------

    def module(self, digest: str) -> str | None:
        """The inline module (its ``data:`` URL) kept under ``digest``, the SHA-256 of the
        URL in hex; None when this node has none."""
        url = self._modules.url(digest)
        if url is not None:
            return url
        row = self._db.execute("SELECT data FROM modules WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            return None
        url = str(row[0])
        self._modules.remember(digest, url)
        return url

    def keep_module(self, digest: str, url: str) -> None:
        """Keep a module fetched for an execution not stored yet (the caller checked that
        ``url`` hashes to ``digest``); :meth:`prune` forgets it once unused for long."""
        with self._writes.transaction():
            self._keep_module(digest, url, now_ns())
        self._modules.remember(digest, url)

    # -- outbox -----------------------------------------------------------------------------

    def enqueue_callback(self, requester_id: str, message: Callback) -> int:
        """Queue a callback on its own (one that announces no state change)."""
        now = now_ns()
        with self._writes.transaction():
            seq = outbox_table.enqueue(self._db, requester_id, message, now)
        self._note(OutboxEntry(seq, requester_id, message.execution_id, message, now))
        return seq

    def note_callbacks(self, execution_id: str) -> None:
        """Keep the callbacks of ``execution_id`` in memory too as they are committed, for
        :meth:`noted_callbacks` (until :meth:`forget_noted`). Only for an execution this
        store does not hold yet (so with none queued): the caller has just looked."""
        self._noted.setdefault(execution_id, [])

    def noted_callbacks(self, requester_id: str, execution_id: str) -> list[OutboxEntry] | None:
        """What :meth:`callbacks_of` reads, without a query, for an execution noted before
        its first callback was queued; None for any other (read them with it)."""
        noted = self._noted.get(execution_id)
        if noted is None:
            return None
        return [e for e in noted if e.requester_id == requester_id]

    def forget_noted(self, execution_id: str) -> None:
        self._noted.pop(execution_id, None)

    def _note(self, entry: OutboxEntry) -> None:
        noted = self._noted.get(entry.execution_id)
        if noted is not None:
            noted.append(entry)

    def pending_callbacks(
        self, requester_id: str, *, limit: int = 64, after_seq: int = 0
    ) -> list[OutboxEntry]:
        """The oldest callbacks queued for ``requester_id`` (those after ``after_seq``)."""
        return self.pending_page(requester_id, limit=limit, after_seq=after_seq)[0]

    def pending_page(
        self,
        requester_id: str,
        *,
        limit: int = 64,
        after_seq: int = 0,
        skip: Callable[[int, str], bool] | None = None,
    ) -> tuple[list[OutboxEntry], int]:
        """:meth:`pending_callbacks` but those ``skip(seq, execution_id)`` is true for (so
        fewer than ``limit`` may come back while more are queued), and the last sequence
        number read, to read on from."""
        return outbox_table.pending_callbacks(
            self._db, requester_id, limit=limit, after_seq=after_seq, skip=skip
        )

    def callbacks_of(self, requester_id: str, execution_id: str) -> list[OutboxEntry]:
        """The callbacks about ``execution_id`` queued for ``requester_id``, oldest first."""
        return outbox_table.callbacks_of(self._db, requester_id, execution_id)

    def unsettled_ids(self, requester_id: str | None = None) -> list[str]:
        """Executions the requester must not give up on: those still under way here, and
        those whose final callback is still in the outbox (finished, not yet reported).

        The node reports these to its requesters, so a restarted requester can fail what this node
        no longer knows without failing what is only waiting to be delivered.
        """
        return outbox_table.unsettled_ids(self._db, requester_id)

    def callback_requesters(self) -> list[str]:
        """Requesters with callbacks waiting."""
        return outbox_table.callback_requesters(self._db)

    def delete_callback(self, seq: int) -> None:
        self.delete_callbacks([seq])

    def delete_callbacks(self, seqs: Collection[int]) -> None:
        """Forget delivered callbacks (a whole batch in one transaction)."""
        with self._writes.transaction():
            outbox_table.delete_callbacks(self._db, seqs)

    # -- internals --------------------------------------------------------------------------

    def _keep_module(self, digest: str, url: str, now: int) -> None:
        self._db.execute(
            "INSERT INTO modules (hash, data, used_time) VALUES (?, ?, ?)"
            " ON CONFLICT (hash) DO UPDATE SET used_time = excluded.used_time",
            (digest, url, now),
        )
