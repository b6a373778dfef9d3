"""The requester's job store: jobs, executions, history and evaluations in SQLite (WAL).

Every update is compare-and-set on the row's revision and goes through the state-machine
tables of :mod:`bacalhau.models`; a write that would make a transition the tables do not allow
raises :class:`~bacalhau.errors.InvalidTransition`. Writes that belong together (a job and its
first evaluation, a plan) happen in one transaction via :meth:`JobStore.transaction`.

SQLite is called directly from the event loop: each transaction is a few hundred microseconds
with ``synchronous=NORMAL`` under WAL, cheaper than a thread hop. Listing pages in SQL over the
state columns (namespace, labels, times, document size) and reads the documents of one page
only; for a large page the caller may read and decode them in a worker thread
(:meth:`JobStore.read_jobs` with its own connection).
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bacalhau.errors import (
    ExecutionNotFound,
    JobNotFound,
    MultipleJobsFound,
    RevisionConflict,
)
from bacalhau.models import (
    Evaluation,
    EvaluationStatus,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    HistoryType,
    Job,
    JobHistory,
    JobStateType,
    Resources,
    RunCommandResult,
    SpecConfig,
    check_desired_transition,
    check_execution_transition,
    check_job_transition,
    is_shared_module_url,
    module_digest,
    now_ns,
)
from bacalhau.orchestrator._metrics import (
    JOBS_FINISHED,
    JOBS_SUBMITTED,
)
from bacalhau.orchestrator._ranking import Placed
from bacalhau.orchestrator._rows import (
    eval_from_row,
    eval_to_row,
    execution_from_row,
    execution_to_row,
)
from bacalhau.orchestrator._store_history import JobHistoryLog
from bacalhau.orchestrator._store_schema import open_database

#: Decoded job specs kept in memory: at most this many, and at most about this many bytes of
#: stored documents (a spec with an inline WASM module is tens of KB; its decoded form holds
#: the same string), so the cache stays small beside the requester's own memory.
_SPEC_CACHE = 2048
_SPEC_CACHE_BYTES = 16 * 2**20


class _SpecCache:
    """Decoded specs by (job ID, version), least recently used dropped first."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, int], tuple[Job, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, int]) -> Job | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: tuple[str, int], spec: Job, size: int) -> None:
        self.discard(key)
        self._items[key] = (spec, size)
        self._bytes += size
        while len(self._items) > _SPEC_CACHE or self._bytes > _SPEC_CACHE_BYTES:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped

    def discard(self, key: tuple[str, int]) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1]

    def discard_jobs(self, job_ids: set[str]) -> None:
        for key in [k for k in self._items if k[0] in job_ids]:
            self.discard(key)


#: Executions kept decoded in memory, most recently used last (a few hundred bytes each).
_EXECUTION_CACHE = 4096
_EXECUTION_SLOTS = Execution.__slots__


def _copy_execution(ex: Execution) -> Execution:
    """A shallow copy: callers change an execution's fields, never the values they hold."""
    # Slot by slot: several times cheaper than copy.copy.
    out = Execution.__new__(Execution)
    for name in _EXECUTION_SLOTS:
        setattr(out, name, getattr(ex, name))
    return out


#: Columns a job listing can be ordered by.
JOB_ORDER_COLUMNS = ("create_time", "modify_time", "id")
#: Rows fetched per statement when reading a page's documents.
_FETCH_CHUNK = 500


@dataclass(slots=True)
class StoredJobPage:
    """One page of a job listing: the IDs, in order, and the size of their stored documents
    (read them with :meth:`JobStore.read_jobs`)."""

    ids: list[str]
    #: Bytes of stored documents the page holds (large pages are worth reading off the loop).
    size: int
    #: True when more matching jobs follow the page.
    has_more: bool


#: Where a WASM job's inline entry module (a ``data:`` URL) sits in its spec.
_MODULE_PATH = ("Tasks", 0, "Engine", "Params", "EntryModule", "Source", "Params", "URL")
_MODULE_JSON_PATH = "$.Tasks[0].Engine.Params.EntryModule.Source.Params.URL"
# Inline modules are stored once, by content hash, in ``blobs``: those that asks to compute
# nodes name by reference (``is_shared_module_url``), so the store can answer every such name.

#: A job as read from SQL: its state columns and the document of its spec (with its
#: inline module put back from ``blobs`` by SQLite itself, so readers see the spec whole).
_JobRow = tuple[str, int, str, int, int, int, str]
_JOB_COLUMNS = (
    "j.id, j.state, j.state_message, j.revision, j.version, j.modify_time,"
    f" CASE WHEN s.blob IS NULL THEN s.data ELSE json_set(s.data, '{_MODULE_JSON_PATH}',"
    " (SELECT b.data FROM blobs b WHERE b.hash = s.blob)) END"
    " FROM jobs j JOIN job_specs s ON s.job_id = j.id AND s.version = j.version"
)


def _take_module(doc: dict[str, Any]) -> str | None:
    """Take a large inline entry module out of ``doc`` (a job's wire dict), leaving an empty
    URL; returns it, or None when the job has none."""
    parent: Any = doc
    for step in _MODULE_PATH[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return None
    url = parent.get("URL") if isinstance(parent, dict) else None
    if not is_shared_module_url(url):
        return None
    parent["URL"] = ""
    return url


#: A job's state columns alone (what :meth:`JobStore.get_job` reads when its spec is cached).
_JobState = tuple[str, int, str, int, int, int]
_STATE_COLUMNS = "id, state, state_message, revision, version, modify_time FROM jobs"
#: The stored document of one version of a job's spec, its inline module put back.
_SPEC_DOCUMENT = (
    f"CASE WHEN s.blob IS NULL THEN s.data ELSE json_set(s.data, '{_MODULE_JSON_PATH}',"
    " (SELECT b.data FROM blobs b WHERE b.hash = s.blob)) END"
    " FROM job_specs s WHERE s.job_id = ? AND s.version = ?"
)
_JOB_SLOTS = Job.__slots__


def _with_state(spec: Job, row: _JobRow | _JobState) -> Job:
    """A copy of a decoded spec with the state columns of ``row``. Shallow: the spec's
    nested values are shared with the cache, and nothing changes them once stored."""
    # Slot by slot: several times cheaper than copy.copy, and jobs are read on every
    # request, evaluation and callback.
    job = Job.__new__(Job)
    for name in _JOB_SLOTS:
        setattr(job, name, getattr(spec, name))
    job.state = JobStateType(row[1])
    job.state_message = json.loads(row[2])
    job.revision = row[3]
    job.modify_time = row[5]
    return job


def decode_jobs(rows: Sequence[_JobRow]) -> list[Job]:
    """Decode stored jobs (pure; safe to run in a worker thread)."""
    return [_with_state(Job.from_dict(json.loads(row[6])), row) for row in rows]


class JobStore(JobHistoryLog):
    """SQLite-backed store of the requester's state."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._db = open_database(self._path)
        self._depth = 0
        #: The task that opened the transaction in progress (None outside an event loop).
        self._owner = None
        # Waiters for history changes, per job (long-poll support).
        self._changed = {}
        self._pending_notify = set()
        #: Per node, the active executions and what each holds (for ranking), as committed.
        self._active: dict[str, dict[str, Resources]] = {}
        #: Changes to ``_active`` made by the open transaction: (node, execution, held or
        #: None once it ended), applied when it commits.
        self._pending_active = []
        self._load_active()
        #: (job ID, version) -> the decoded spec; bounded, least recently used dropped.
        self._specs = _SpecCache()
        #: Execution ID -> (revision, the decoded execution) as last written or read; a read
        #: of a row at that revision copies it instead of decoding the row's document.
        self._executions: OrderedDict[str, tuple[int, Execution]] = OrderedDict()
        #: Job ID -> its history as committed, for jobs read recently (history pages and
        #: long-polls read this instead of SQL; a job's log is loaded once, then appended).
        self._logs = OrderedDict()
        #: History items written by the open transaction, appended to logs when it commits.
        self._pending_history = []

    def close(self) -> None:
        self._db.close()

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
        out: dict[str, Placed] = {}
        for node_id, held in self._active.items():
            total = Resources()
            for r in held.values():
                total.cpu += r.cpu
                total.memory += r.memory
                total.disk += r.disk
                total.gpu += r.gpu
            out[node_id] = Placed(count=len(held), allocated=total)
        return out

    # -- jobs --------------------------------------------------------------------------

    def _keep_module(self, doc: dict[str, Any]) -> tuple[str | None, str | None]:
        """Take ``doc``'s large inline module out and store it once by content hash (in the
        caller's transaction); returns the module and its hash, or (None, None)."""
        module = _take_module(doc)
        if module is None:
            return None, None
        blob = module_digest(module)
        self._db.execute("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (blob, module))
        return module, blob

    def create_job(self, job: Job) -> None:
        with self._write():
            check_job_transition(JobStateType.UNDEFINED, job.state)
            doc = job.to_dict()
            # Every job running the same module shares one copy of it (jobs of a benchmark or a
            # sweep resend the same tens of KB each time).
            module, blob = self._keep_module(doc)
            data = json.dumps(doc)
            self._db.execute(
                "INSERT INTO jobs (id, namespace, state, state_message, revision, version,"
                " create_time, modify_time, labels, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.namespace,
                    int(job.state),
                    json.dumps(job.state_message),
                    job.revision,
                    job.version,
                    job.create_time,
                    job.modify_time,
                    json.dumps(job.labels),
                    len(data) + (len(module) if module else 0),
                ),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO job_specs (job_id, version, data, blob)"
                " VALUES (?, ?, ?, ?)",
                (job.id, job.version, data, blob),
            )
            # The new job is read back at once (its first evaluation, the client's wait): cache
            # its spec now, decoded from a fresh wire dict as a read would (the caller's object
            # stays the caller's), instead of having SQLite put the module back into the
            # document and decoding that (~340 us against ~90 us here).
            self._specs.put(
                (job.id, job.version),
                Job.from_dict(job.to_dict()),
                len(data) + (len(module) if module else 0),
            )
            JOBS_SUBMITTED.inc()

    def get_job(self, job_id: str) -> Job:
        row: _JobState | None = self._db.execute(
            f"SELECT {_STATE_COLUMNS} WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(f"job not found: {job_id}")
        # The spec is read (and its module put back by SQLite) only when not cached: a
        # cached job costs one small row.
        spec = self._specs.get((row[0], row[4]))
        if spec is not None:
            return _with_state(spec, row)
        doc = self._db.execute(f"SELECT {_SPEC_DOCUMENT}", (row[0], row[4])).fetchone()
        if doc is None:
            raise JobNotFound(f"job not found: {job_id}")
        return self._decode((*row, str(doc[0])))

    def _decode(self, row: _JobRow) -> Job:
        """The job of ``row``: its spec decoded once per version (cached), its state from
        the row's columns."""
        key = (row[0], row[4])
        spec = self._specs.get(key)
        if spec is None:
            spec = Job.from_dict(json.loads(row[6]))
            self._specs.put(key, spec, len(row[6]))
        return _with_state(spec, row)

    def resolve_job_id(self, prefix: str) -> str:
        """Full job ID for an ID or a unique prefix."""
        if self._logs.get(prefix):
            # A job whose history is in memory exists (deleting a job drops its log): a
            # long-poll asks this on every change of the job it follows.
            return prefix
        row = self._db.execute("SELECT id FROM jobs WHERE id = ?", (prefix,)).fetchone()
        if row is not None:
            return str(row[0])
        if not prefix:
            raise JobNotFound("job not found: empty job ID")
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",)
        ).fetchall()
        if not rows:
            raise JobNotFound(f"job not found: {prefix}")
        if len(rows) > 1:
            raise MultipleJobsFound(f"multiple jobs found for ID prefix {prefix}")
        return str(rows[0][0])

    def list_jobs(self) -> list[Job]:
        return self.read_jobs(self.page_jobs().ids)

    def page_jobs(
        self,
        *,
        namespace: str = "",
        labels_match: Callable[[Mapping[str, str]], bool] | None = None,
        order_by: str = "create_time",
        reverse: bool = False,
        limit: int = 0,
        offset: int = 0,
        after: tuple[int | str, str] | None = None,
    ) -> StoredJobPage:
        """One page of jobs, ordered by ``order_by`` (a column of :data:`JOB_ORDER_COLUMNS`)
        then ID, in SQL; only the page's documents are read.

        ``namespace`` "" or "*" means all; ``labels_match`` filters on the labels column;
        ``after`` is a keyset cursor ``(sort value, job ID)`` of the last job already seen
        (``offset`` skips matches instead, for paging tokens of older versions); ``limit`` 0
        means no limit.
        """
        if order_by not in JOB_ORDER_COLUMNS:
            raise ValueError(f"cannot order jobs by {order_by!r}")
        where: list[str] = []
        args: list[object] = []
        if namespace and namespace != "*":
            where.append("namespace = ?")
            args.append(namespace)
        if after is not None:
            where.append(f"({order_by}, id) {'<' if reverse else '>'} (?, ?)")
            args.extend(after)
        direction = "DESC" if reverse else "ASC"
        sql = (
            f"SELECT id, labels, size FROM jobs{' WHERE ' + ' AND '.join(where) if where else ''}"
            f" ORDER BY {order_by} {direction}, id {direction}"
        )
        ids: list[str] = []
        size = 0
        skipped = 0
        has_more = False
        for job_id, labels, job_size in self._db.execute(sql, args):
            if labels_match is not None and not labels_match(json.loads(labels or "{}")):
                continue
            if skipped < offset:
                skipped += 1
                continue
            if limit and len(ids) == limit:
                has_more = True
                break
            ids.append(str(job_id))
            size += int(job_size or 0)
        return StoredJobPage(ids=ids, size=size, has_more=has_more)

    def read_jobs(self, ids: Sequence[str], *, own_connection: bool = False) -> list[Job]:
        """The jobs with these IDs, in this order (IDs no longer stored are skipped).

        ``own_connection`` reads through a connection of its own, so that the call can run in
        a worker thread while the event loop keeps using the store (WAL: it sees committed
        data only).
        """
        if not own_connection:
            return [self._decode(row) for row in self._rows(self._db, ids)]
        db = sqlite3.connect(self._path, isolation_level=None)
        try:
            return decode_jobs(self._rows(db, ids))
        finally:
            db.close()

    @staticmethod
    def _rows(db: sqlite3.Connection, ids: Sequence[str]) -> list[_JobRow]:
        found: dict[str, _JobRow] = {}
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = list(ids[start : start + _FETCH_CHUNK])
            marks = ",".join("?" for _ in chunk)
            for row in db.execute(f"SELECT {_JOB_COLUMNS} WHERE j.id IN ({marks})", chunk):
                found[str(row[0])] = row
        return [found[i] for i in ids if i in found]

    def jobs_in_states(self, states: list[JobStateType]) -> list[str]:
        marks = ",".join("?" for _ in states)
        rows = self._db.execute(
            f"SELECT id FROM jobs WHERE state IN ({marks})", [int(s) for s in states]
        ).fetchall()
        return [str(r[0]) for r in rows]

    def update_job_state(
        self,
        job_id: str,
        new_state: JobStateType,
        *,
        expected_revision: int | None = None,
        message: str = "",
        event: Event | None = None,
    ) -> Job:
        """Move a job to ``new_state`` (CAS on revision) and record a JobLevel history item."""
        job = self.get_job(job_id)
        if expected_revision is not None and job.revision != expected_revision:
            raise RevisionConflict(
                f"job {job_id} is at revision {job.revision}, expected {expected_revision}"
            )
        old = job.state
        check_job_transition(old, new_state)
        now = now_ns()
        job.state = new_state
        job.state_message = message
        job.revision += 1
        job.modify_time = now
        with self._write():
            # The spec is not rewritten: a state change is one small row.
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, state_message = ?, revision = ?, modify_time = ?"
                " WHERE id = ? AND revision = ?",
                (int(new_state), json.dumps(message), job.revision, now, job_id, job.revision - 1),
            )
            if cur.rowcount != 1:
                raise RevisionConflict(f"job {job_id} changed concurrently")
            if new_state.is_terminal() and not old.is_terminal():
                JOBS_FINISHED.labels(state=new_state.wire).inc()
            self.add_history(
                JobHistory(
                    seq_num=0,
                    type=HistoryType.JOB,
                    job_id=job_id,
                    event=event or Event(message=message, topic="State Update", timestamp=now),
                    time=now,
                    new_revision=job.revision,
                    job_state_previous=old if old != new_state else None,
                    job_state_new=new_state,
                )
            )
        return job

    def add_job_version(self, job_id: str, *, event: Event) -> Job:
        """Rerun a job: its spec again as a new version (``Version`` + 1), Pending, with a
        JobLevel history item. Earlier versions' specs stay (see :meth:`job_versions`);
        their executions are the scheduler's to stop. A rerun starts a new life of the job,
        not a transition of the old one, so any state may be left."""
        job = self.get_job(job_id)
        now = now_ns()
        spec = job.copy()
        spec.version = job.version + 1
        spec.state = JobStateType.PENDING
        spec.state_message = ""
        spec.revision = job.revision + 1
        spec.modify_time = now
        doc = spec.to_dict()
        with self.transaction():
            _, blob = self._keep_module(doc)  # shared with the earlier versions, as at create
            self._db.execute(
                "INSERT INTO job_specs (job_id, version, data, blob) VALUES (?, ?, ?, ?)",
                (job_id, spec.version, json.dumps(doc), blob),
            )
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, state_message = ?, revision = ?, version = ?,"
                " modify_time = ? WHERE id = ? AND revision = ?",
                (
                    int(spec.state),
                    json.dumps(""),
                    spec.revision,
                    spec.version,
                    now,
                    job_id,
                    job.revision,
                ),
            )
            if cur.rowcount != 1:
                raise RevisionConflict(f"job {job_id} changed concurrently")
            self.add_history(
                JobHistory(
                    seq_num=0,
                    type=HistoryType.JOB,
                    job_id=job_id,
                    event=event,
                    time=now,
                    new_revision=spec.revision,
                    job_state_previous=job.state,
                    job_state_new=spec.state,
                )
            )
        return spec

    def job_versions(self, job_id: str) -> list[Job]:
        """Every stored version of a job's spec, oldest first (each as submitted or rerun)."""
        self.get_job(job_id)  # JobNotFound for an unknown job
        rows = self._db.execute(
            "SELECT CASE WHEN s.blob IS NULL THEN s.data ELSE json_set(s.data,"
            f" '{_MODULE_JSON_PATH}', (SELECT b.data FROM blobs b WHERE b.hash = s.blob)) END"
            " FROM job_specs s WHERE s.job_id = ? ORDER BY s.version",
            (job_id,),
        ).fetchall()
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    # -- executions --------------------------------------------------------------------

    def create_execution(self, execution: Execution, event: Event | None = None) -> None:
        check_execution_transition(ExecutionStateType.UNDEFINED, execution.compute_state)
        with self._write():
            self._db.execute(
                "INSERT INTO executions (id, job_id, node_id, compute_state, desired_state,"
                " revision, create_time, modify_time, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    execution.id,
                    execution.job_id,
                    execution.node_id,
                    int(execution.compute_state),
                    int(execution.desired_state),
                    execution.revision,
                    execution.create_time,
                    execution.modify_time,
                    json.dumps(execution_to_row(execution)),
                ),
            )
            self._track(execution)
            self._remember_execution(execution)
            if event is not None:
                self._exec_history(execution, None, event)

    def get_execution(self, execution_id: str) -> Execution:
        row = self._db.execute(
            "SELECT id, revision, data FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        if row is None:
            raise ExecutionNotFound(f"execution not found: {execution_id}")
        return self._execution(row)

    def executions_of(self, job_id: str) -> list[Execution]:
        rows = self._db.execute(
            "SELECT id, revision, data FROM executions WHERE job_id = ? ORDER BY create_time, id",
            (job_id,),
        ).fetchall()
        return [self._execution(r) for r in rows]

    def _execution(self, row: tuple[str, int, str]) -> Execution:
        """The execution of a row (ID, revision, document): a copy of the one decoded or
        written at that revision, or the document decoded. Keyed by revision, a write that
        was rolled back is never taken for the row: its revision is not the row's."""
        cached = self._executions.get(row[0])
        if cached is not None and cached[0] == row[1]:
            self._executions.move_to_end(row[0])
            return _copy_execution(cached[1])
        ex = execution_from_row(json.loads(row[2]))
        self._remember_execution(ex)
        return _copy_execution(ex)

    def _remember_execution(self, ex: Execution) -> None:
        """Keep a copy of ``ex`` as its row now is (every write of a row comes here)."""
        kept = _copy_execution(ex)
        kept.job = None  # as the row holds it: a caller may have attached its job
        self._executions[ex.id] = (ex.revision, kept)
        self._executions.move_to_end(ex.id)
        if len(self._executions) > _EXECUTION_CACHE:
            self._executions.popitem(last=False)

    def active_jobs_on_node(self, node_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT DISTINCT job_id FROM executions WHERE node_id = ? AND compute_state IN"
            " (?, ?, ?, ?, ?, ?, ?)",
            (
                node_id,
                int(ExecutionStateType.NEW),
                int(ExecutionStateType.ASK_FOR_BID),
                int(ExecutionStateType.ASK_FOR_BID_ACCEPTED),
                int(ExecutionStateType.BID_ACCEPTED),
                int(ExecutionStateType.RUNNING),
                int(ExecutionStateType.PUBLISHING),
                int(ExecutionStateType.UNDEFINED),
            ),
        ).fetchall()
        return [str(r[0]) for r in rows]

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
        with self._write():
            cur = self._db.execute(
                "UPDATE executions SET compute_state = ?, desired_state = ?, revision = ?,"
                " modify_time = ?, data = ? WHERE id = ? AND revision = ?",
                (
                    int(ex.compute_state),
                    int(ex.desired_state),
                    ex.revision,
                    ex.modify_time,
                    json.dumps(execution_to_row(ex)),
                    execution_id,
                    ex.revision - 1,
                ),
            )
            if cur.rowcount != 1:
                raise RevisionConflict(f"execution {execution_id} changed concurrently")
            self._track(ex)
            self._remember_execution(ex)
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
            )
        )

    # -- evaluations -------------------------------------------------------------------

    def create_evaluation(self, ev: Evaluation) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO evaluations (id, job_id, status, wait_until, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (ev.id, ev.job_id, ev.status, ev.wait_until, json.dumps(eval_to_row(ev))),
            )

    def set_evaluation_status(self, eval_id: str, status: str) -> None:
        with self._write():
            self._db.execute("UPDATE evaluations SET status = ? WHERE id = ?", (status, eval_id))

    def pending_evaluations(self) -> list[Evaluation]:
        rows = self._db.execute(
            "SELECT data FROM evaluations WHERE status = ? ORDER BY wait_until",
            (EvaluationStatus.PENDING,),
        ).fetchall()
        return [eval_from_row(json.loads(r[0])) for r in rows]

    # -- retention ---------------------------------------------------------------------

    def delete_terminal_jobs(self, *, modified_before: int, limit: int) -> list[str]:
        """Delete up to ``limit`` terminal jobs last changed before ``modified_before`` (Unix
        ns), with their specs, executions, history, evaluations and idempotency tokens, in
        one transaction. Returns their IDs (fewer than ``limit``: nothing more is due)."""
        terminal = [int(s) for s in JobStateType if s.is_terminal()]
        marks = ",".join("?" for _ in terminal)
        with self.transaction():
            ids = [
                str(r[0])
                for r in self._db.execute(
                    f"SELECT id FROM jobs WHERE state IN ({marks}) AND modify_time < ?"
                    " ORDER BY modify_time LIMIT ?",
                    [*terminal, modified_before, limit],
                )
            ]
            if not ids:
                return []
            which = ",".join("?" for _ in ids)
            for table, column in (
                ("job_specs", "job_id"),
                ("executions", "job_id"),
                ("history", "job_id"),
                ("evaluations", "job_id"),
                ("idempotency", "job_id"),
                ("jobs", "id"),
            ):
                self._db.execute(f"DELETE FROM {table} WHERE {column} IN ({which})", ids)
            self._db.execute(
                "DELETE FROM blobs WHERE hash NOT IN"
                " (SELECT blob FROM job_specs WHERE blob IS NOT NULL)"
            )
        gone = set(ids)
        for job_id in ids:
            self._logs.pop(job_id, None)
        self._specs.discard_jobs(gone)
        return ids

    def module(self, digest: str) -> str | None:
        """The inline module (its ``data:`` URL) stored once for the jobs that carry it,
        by the SHA-256 of the URL (hex); None when no stored job carries it."""
        row = self._db.execute("SELECT data FROM blobs WHERE hash = ?", (digest,)).fetchone()
        return str(row[0]) if row is not None else None

    def vacuum_step(self, pages: int) -> None:
        """Give up to ``pages`` free pages back to the file system (incremental vacuum)."""
        self._db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()

    # -- idempotency -------------------------------------------------------------------

    def idempotent_result(self, token: str) -> tuple[str, str, list[str]] | None:
        row = self._db.execute(
            "SELECT job_id, evaluation_id, warnings FROM idempotency WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            return None
        return str(row[0]), str(row[1]), list(json.loads(row[2]))

    def remember_idempotent(
        self, token: str, job_id: str, eval_id: str, warnings: list[str]
    ) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO idempotency (token, job_id, evaluation_id, warnings)"
                " VALUES (?, ?, ?, ?)",
                (token, job_id, eval_id, json.dumps(warnings)),
            )

    # -- node reputation ---------------------------------------------------------------

    def record_verdicts(self, agreed: Mapping[str, bool]) -> None:
        """Add one agreement (True) or disagreement (False) per node, in the caller's
        transaction when there is one (a verification plan's)."""
        now = now_ns()
        with self.transaction():
            for node_id, agrees in agreed.items():
                self._db.execute(
                    "INSERT INTO node_reputation (node_id, agreements, disagreements,"
                    " modify_time) VALUES (?, ?, ?, ?) ON CONFLICT(node_id) DO UPDATE SET"
                    " agreements = agreements + excluded.agreements,"
                    " disagreements = disagreements + excluded.disagreements,"
                    " modify_time = excluded.modify_time",
                    (node_id, int(agrees), int(not agrees), now),
                )

    def reputation_counts(self) -> dict[str, tuple[int, int]]:
        """Per node with a record: (agreements, disagreements)."""
        rows = self._db.execute(
            "SELECT node_id, agreements, disagreements FROM node_reputation"
        ).fetchall()
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}
