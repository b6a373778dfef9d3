"""The job store's executions: compare-and-set writes checked against the execution state
machine, recorded in their job's history, each changed row written once when its transaction
commits; recent executions, and which executions recent jobs
have, kept in memory as their rows hold them; and what runs where (per node, the active
executions and what they hold) kept in memory for ranking."""

from __future__ import annotations

import json
from collections import OrderedDict

from bacalhau._json import dumps_text
from bacalhau.errors import ExecutionNotFound, RevisionConflict
from bacalhau.models import (
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    HistoryType,
    JobHistory,
    Resources,
    RunCommandResult,
    SpecConfig,
    check_desired_transition,
    check_execution_transition,
    now_ns,
    shallow_copy,
)
from bacalhau.orchestrator._ranking import Placed
from bacalhau.orchestrator._rows import execution_from_row, execution_to_row
from bacalhau.orchestrator._store_history import JobHistoryLog

#: Executions kept decoded in memory, most recently used last (a few hundred bytes each).
_EXECUTION_CACHE = 4096
#: Jobs whose execution IDs are kept in memory, most recently used last.
_JOB_EXECUTIONS_CACHE = 4096
#: The states of an execution that holds (or may yet hold) its job on its node.
_ON_NODE = (
    ExecutionStateType.NEW,
    ExecutionStateType.ASK_FOR_BID,
    ExecutionStateType.ASK_FOR_BID_ACCEPTED,
    ExecutionStateType.BID_ACCEPTED,
    ExecutionStateType.RUNNING,
    ExecutionStateType.PUBLISHING,
    ExecutionStateType.UNDEFINED,
)


def _creation_order(ex: Execution) -> tuple[int, str]:
    """Executions' order in SQL (``ORDER BY create_time, id``)."""
    return ex.create_time, ex.id


class ExecutionRecords(JobHistoryLog):
    """Executions, and the placements they make (read on every placement)."""

    #: Per node, the active executions and what each holds (for ranking), as committed.
    _active: dict[str, dict[str, Resources]]
    #: Execution ID -> (revision, the decoded execution) as its row holds it (in the open
    #: transaction too: undone with it), for recent executions: reading one so kept reads
    #: no SQL, and returns a shallow copy (callers change an execution's fields, never the
    #: values they hold). The store is the only writer of its executions' rows.
    _executions: OrderedDict[str, tuple[int, Execution]]
    #: Job ID -> the IDs of all its executions (rows of the open transaction included:
    #: undone with it), for recent jobs.
    _job_executions: OrderedDict[str, tuple[str, ...]]

    def create_execution(self, execution: Execution, event: Event | None = None) -> None:
        """Store a new execution (its row is written when the transaction commits)."""
        check_execution_transition(ExecutionStateType.UNDEFINED, execution.compute_state)
        with self._write_at_commit():
            if execution.id in self._dirty_executions or execution.id in self._executions:
                raise RevisionConflict(f"execution {execution.id} already exists")
            self._track(execution)
            kept = self._remember_execution(execution)
            self._cache(self._dirty_executions, execution.id, (None, kept))
            known = self._job_executions.get(execution.job_id)
            if known is not None:
                self._cache_recent(
                    self._job_executions,
                    execution.job_id,
                    (*known, execution.id),
                    _JOB_EXECUTIONS_CACHE,
                )
            if event is not None:
                self._exec_history(execution, None, event)

    def get_execution(self, execution_id: str) -> Execution:
        cached = self._executions.get(execution_id)
        if cached is not None:
            self._executions.move_to_end(execution_id)
            return shallow_copy(cached[1])
        dirty = self._dirty_executions.get(execution_id)
        if dirty is not None:
            return shallow_copy(dirty[1])
        row = self._db.execute(
            "SELECT id, revision, data FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        if row is None:
            raise ExecutionNotFound(f"execution not found: {execution_id}")
        return self._execution(row)

    def executions_of(self, job_id: str) -> list[Execution]:
        """The job's executions, oldest first (by creation time, then ID)."""
        known = self._job_executions.get(job_id)
        if known is not None:
            self._job_executions.move_to_end(job_id)
            out = [self.get_execution(ex_id) for ex_id in known]
            out.sort(key=_creation_order)
            return out
        rows = self._db.execute(
            "SELECT id, revision, data FROM executions WHERE job_id = ? ORDER BY create_time, id",
            (job_id,),
        ).fetchall()
        found = [self._execution(r) for r in rows]
        if self._dirty_executions:
            # The open transaction's rows are written at its commit: add those it created.
            stored = {ex.id for ex in found}
            found += [
                shallow_copy(ex)
                for ex_id, (_, ex) in self._dirty_executions.items()
                if ex.job_id == job_id and ex_id not in stored
            ]
            found.sort(key=_creation_order)
        self._cache_recent(
            self._job_executions, job_id, tuple(ex.id for ex in found), _JOB_EXECUTIONS_CACHE
        )
        return found

    def _execution(self, row: tuple[str, int, str]) -> Execution:
        """The execution of a row (ID, revision, document): a copy of the one kept in
        memory, or the document decoded (and kept); the open transaction's version of an
        execution it changed (its row is written at the commit)."""
        dirty = self._dirty_executions.get(row[0])
        if dirty is not None:
            return shallow_copy(dirty[1])
        cached = self._executions.get(row[0])
        if cached is not None and cached[0] == row[1]:
            self._executions.move_to_end(row[0])
            return shallow_copy(cached[1])
        ex = execution_from_row(json.loads(row[2]))
        self._remember_execution(ex)
        return shallow_copy(ex)

    def _remember_execution(self, ex: Execution) -> Execution:
        """Keep a copy of ``ex`` as its row now is (every write of a row comes here); returns
        the copy."""
        kept = shallow_copy(ex)
        kept.job = None  # as the row holds it: a caller may have attached its job
        self._cache_recent(self._executions, ex.id, (ex.revision, kept), _EXECUTION_CACHE)
        return kept

    def active_jobs_on_node(self, node_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT id, job_id FROM executions WHERE node_id = ? AND compute_state IN"
            " (?, ?, ?, ?, ?, ?, ?)",
            (node_id, *_ON_NODE),
        ).fetchall()
        dirty = self._dirty_executions
        jobs = {str(r[1]) for r in rows if r[0] not in dirty}
        # The open transaction's changes are written at its commit: overlay them.
        jobs.update(
            ex.job_id
            for _, ex in dirty.values()
            if ex.node_id == node_id and ex.compute_state in _ON_NODE
        )
        return sorted(jobs)

    def update_execution(
        self,
        execution_id: str,
        *,
        compute_state: ExecutionStateType | None = None,
        desired_state: ExecutionDesiredStateType | None = None,
        compute_message: str | None = None,
        desired_message: str | None = None,
        compute_details: dict[str, str] | None = None,
        published_result: SpecConfig | None = None,
        run_output: RunCommandResult | None = None,
        expected_states: frozenset[ExecutionStateType] | None = None,
        expected_revision: int | None = None,
        event: Event | None = None,
    ) -> Execution:
        """Change an execution (CAS on revision; transitions checked).

        ``expected_states`` makes the write conditional on the current observed state (used by
        callbacks that may arrive late or twice); a mismatch raises RevisionConflict.
        """
        ex = self.get_execution(execution_id)
        if expected_revision is not None and ex.revision != expected_revision:
            raise RevisionConflict(
                f"execution {execution_id} is at revision {ex.revision}, "
                f"expected {expected_revision}"
            )
        if expected_states is not None and ex.compute_state not in expected_states:
            raise RevisionConflict(
                f"execution {execution_id} is {ex.compute_state.label}, not one of "
                + ", ".join(sorted(s.label for s in expected_states))
            )
        old_state = ex.compute_state
        if compute_state is not None:
            check_execution_transition(ex.compute_state, compute_state)
            ex.compute_state = compute_state
        if desired_state is not None:
            check_desired_transition(ex.desired_state, desired_state)
            ex.desired_state = desired_state
        if compute_message is not None:
            ex.compute_message = compute_message
        if desired_message is not None:
            ex.desired_message = desired_message
        if compute_details is not None:
            ex.compute_details = dict(compute_details)
        if published_result is not None:
            ex.published_result = published_result
        if run_output is not None:
            ex.run_output = run_output
        ex.revision += 1
        ex.modify_time = now_ns()
        # Kept as the execution's row, written when the transaction commits.
        with self._write_at_commit():
            dirty = self._dirty_executions.get(ex.id)
            base = ex.revision - 1 if dirty is None else dirty[0]
            self._track(ex)
            self._cache(self._dirty_executions, ex.id, (base, self._remember_execution(ex)))
            if event is not None or (compute_state is not None and compute_state != old_state):
                self._exec_history(
                    ex,
                    old_state if compute_state is not None and old_state != compute_state else None,
                    event
                    or Event(
                        message=ex.compute_message or ex.compute_state.label,
                        topic="Execution",
                        timestamp=ex.modify_time,
                    ),
                )
        return ex

    def _write_executions(self) -> None:
        """Write the rows of the executions the open transaction changed, each once (just
        before it commits): new ones inserted, the others compare-and-set on the revision
        their row had."""
        if not self._dirty_executions:
            return
        created: list[tuple[object, ...]] = []
        changed: list[tuple[object, ...]] = []
        for base, ex in self._dirty_executions.values():
            data = dumps_text(execution_to_row(ex))
            if base is None:
                created.append(
                    (
                        ex.id,
                        ex.job_id,
                        ex.node_id,
                        int(ex.compute_state),
                        int(ex.desired_state),
                        ex.revision,
                        ex.create_time,
                        ex.modify_time,
                        data,
                    )
                )
            else:
                changed.append(
                    (
                        int(ex.compute_state),
                        int(ex.desired_state),
                        ex.revision,
                        ex.modify_time,
                        data,
                        ex.id,
                        base,
                    )
                )
        if created:
            self._db.executemany(
                "INSERT INTO executions (id, job_id, node_id, compute_state, desired_state,"
                " revision, create_time, modify_time, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                created,
            )
        if changed:
            cur = self._db.executemany(
                "UPDATE executions SET compute_state = ?, desired_state = ?, revision = ?,"
                " modify_time = ?, data = ? WHERE id = ? AND revision = ?",
                changed,
            )
            if cur.rowcount != len(changed):
                raise RevisionConflict("an execution changed concurrently")

    def _exec_history(
        self, ex: Execution, previous: ExecutionStateType | None, event: Event
    ) -> None:
        self.add_history(
            JobHistory(
                seq_num=0,
                type=HistoryType.EXECUTION,
                job_id=ex.job_id,
                event=event,
                time=event.timestamp or now_ns(),
                new_revision=ex.revision,
                node_id=ex.node_id,
                execution_id=ex.id,
                exec_state_previous=previous,
                exec_state_new=ex.compute_state,
                job_version=ex.job_version,
            )
        )

    # -- what runs where (for ranking) ------------------------------------------------

    def _load_active(self) -> None:
        terminal = [int(s) for s in ExecutionStateType if s.is_terminal()]
        marks = ",".join("?" for _ in terminal)
        for node_id, ex_id, data in self._db.execute(
            f"SELECT node_id, id, data FROM executions WHERE compute_state NOT IN ({marks})",
            terminal,
        ):
            held = Resources.from_dict(json.loads(data).get("alloc") or {})
            self._active.setdefault(str(node_id), {})[str(ex_id)] = held

    def _track(self, ex: Execution) -> None:
        self._pending_active.append((ex.node_id, ex.id, ex.allocated if ex.is_active() else None))

    def _flush_active(self) -> None:
        for node_id, ex_id, held in self._pending_active:
            on_node = self._active.setdefault(node_id, {})
            if held is None:
                on_node.pop(ex_id, None)
                if not on_node:
                    del self._active[node_id]
            else:
                on_node[ex_id] = held
        self._pending_active.clear()

    def placed(self) -> dict[str, Placed]:
        """Per node, the executions this requester placed there that have not ended, and
        what they hold (kept in memory as writes commit; read on every placement)."""
        return {node_id: _placed(held) for node_id, held in self._active.items()}

    def placed_on(self, node_id: str) -> Placed | None:
        """:meth:`placed` of one node (None: nothing placed there runs), without the others:
        a pass that looks at its executions' nodes alone."""
        held = self._active.get(node_id)
        return _placed(held) if held else None


def _placed(held: dict[str, Resources]) -> Placed:
    """What a node's active executions (ID -> what each holds) hold together."""
    total = Resources()
    for r in held.values():
        total.cpu += r.cpu
        total.memory += r.memory
        total.disk += r.disk
        total.gpu += r.gpu
    return Placed(count=len(held), allocated=total)
