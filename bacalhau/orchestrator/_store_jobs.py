"""The job store's jobs: state columns per job and its spec per version, with large inline
modules kept once by content hash (``blobs``); decoded specs and recent jobs' state columns
cached in memory; every state change is compare-and-set on the job's revision and recorded in
its history."""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from typing import Any

from bacalhau._json import dumps_text
from bacalhau.errors import JobNotFound, MultipleJobsFound, RevisionConflict
from bacalhau.models import (
    VERSION_START_META,
    Event,
    HistoryType,
    Job,
    JobHistory,
    JobStateType,
    check_job_transition,
    is_shared_module_url,
    module_digest,
    new_job_id,
    now_ns,
    shallow_copy,
)
from bacalhau.orchestrator._metrics import JOBS_FINISHED, JOBS_SUBMITTED
from bacalhau.orchestrator._store_history import JobHistoryLog

#: Decoded job specs kept in memory: at most this many, and at most about this many bytes of
#: stored documents (a spec with an inline WASM module is tens of KB; its decoded form holds
#: the same string), so the cache stays small beside the requester's own memory.
_SPEC_CACHE = 2048
_SPEC_CACHE_BYTES = 16 * 2**20
#: Jobs whose state columns are kept in memory (a small tuple each), most recently used last.
_ROW_CACHE = 4096
#: Module hashes remembered as stored in ``blobs`` (forgotten all at once past this).
_BLOB_CACHE = 1024
#: The namespace names are looked up in when a request names none (``normalise_job``
#: gives a job without one this namespace too).
_DEFAULT_NAMESPACE = "default"
#: Every job's ID is made by ``new_job_id`` (``j-`` and a UUID): none is longer.
_LONGEST_JOB_ID = len(new_job_id())
#: Most characters of a job reference an error message repeats.
_SHOWN_REF = 100


class SpecCache:
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


#: Where a WASM job's inline entry module (a ``data:`` URL) sits in its spec.
_MODULE_PATH = ("Tasks", 0, "Engine", "Params", "EntryModule", "Source", "Params", "URL")
MODULE_JSON_PATH = "$.Tasks[0].Engine.Params.EntryModule.Source.Params.URL"
# Inline modules are stored once, by content hash, in ``blobs``: those that asks to compute
# nodes name by reference (``is_shared_module_url``), so the store can answer every such name.

#: A job as read from SQL: its state columns and the document of its spec (with its
#: inline module put back from ``blobs`` by SQLite itself, so readers see the spec whole).
JobRow = tuple[str, int, str, int, int, int, str]


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
    f"CASE WHEN s.blob IS NULL THEN s.data ELSE json_set(s.data, '{MODULE_JSON_PATH}',"
    " (SELECT b.data FROM blobs b WHERE b.hash = s.blob)) END"
    " FROM job_specs s WHERE s.job_id = ? AND s.version = ?"
)


def own_name(job: Job) -> str | None:
    """What the ``name`` column holds for ``job``: its Name, or None when that is its ID
    (or empty), as for a job submitted without one (see ``_store_schema``)."""
    return _bindable(job.name) if job.name and job.name != job.id else None


def _shown(ref: str) -> str:
    """A job reference (or a namespace) as an error message repeats it: a name may be of any
    length."""
    return ref if len(ref) <= _SHOWN_REF else ref[:_SHOWN_REF] + "…"


def _bindable(text: str) -> str:
    """``text`` as SQLite can bind it. The edges refuse invalid Unicode, but a job stored by
    an older version may hold a lone surrogate in its name: it becomes U+FFFD, as Go's JSON
    decoder reads it (and as the API writes it back)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def with_state(spec: Job, row: JobRow | _JobState) -> Job:
    """A copy of a decoded spec with the state columns of ``row``. Shallow: the spec's
    nested values are shared with the cache, and nothing changes them once stored."""
    # Jobs are read on every request, evaluation and callback.
    job = shallow_copy(spec)
    job.state = JobStateType(row[1])
    job.state_message = json.loads(row[2])
    job.revision = row[3]
    job.modify_time = row[5]
    return job


class JobRecords(JobHistoryLog):
    """Jobs and the versions of their specs."""

    #: (job ID, version) -> the decoded spec; bounded, least recently used dropped.
    _specs: SpecCache
    #: Job ID -> its state columns as its row holds them (in the open transaction too:
    #: undone with it), for recent jobs: reading a job so kept reads no SQL. The store is
    #: the only writer of its jobs' rows.
    _job_rows: OrderedDict[str, _JobState]
    #: Hashes of modules ``blobs`` holds (as written: undone with a rolled-back write).
    _blobs: dict[str, None]
    #: IDs of the jobs in state Queued (as written: undone with a rolled-back write); every
    #: execution that ends asks for them (``NodeEvents.on_capacity_change``).
    _queued: dict[str, None]
    #: Job ID -> the IDs of its executions, for recent jobs (``_store_executions``); a job
    #: created here starts with none.
    _job_executions: OrderedDict[str, tuple[str, ...]]

    def _keep_module(self, doc: dict[str, Any]) -> tuple[str | None, str | None]:
        """Take ``doc``'s large inline module out and store it once by content hash (in the
        caller's transaction); returns the module and its hash, or (None, None)."""
        module = _take_module(doc)
        if module is None:
            return None, None
        blob = module_digest(module)
        if blob not in self._blobs:
            self._db.execute(
                "INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (blob, module)
            )
            if len(self._blobs) >= _BLOB_CACHE:
                self._blobs.clear()
            self._cache(self._blobs, blob, None)
        return module, blob

    def _keep_row(self, row: _JobState) -> None:
        """Remember a job's state columns as its row now holds them (every write of a
        job's state comes here)."""
        self._cache_recent(self._job_rows, row[0], row, _ROW_CACHE)
        if row[1] == JobStateType.QUEUED:
            if row[0] not in self._queued:
                self._cache(self._queued, row[0], None)
        elif row[0] in self._queued:
            self._uncache(self._queued, row[0])

    def _load_queued(self) -> None:
        self._queued = dict.fromkeys(
            str(r[0])
            for r in self._db.execute(
                "SELECT id FROM jobs WHERE state = ?", (int(JobStateType.QUEUED),)
            )
        )

    def create_job(self, job: Job, *, handed_over: bool = False) -> None:
        """Store a new job. With ``handed_over`` the store keeps ``job`` itself as its
        decoded copy, and the caller must not change it (or anything it holds) afterwards:
        the submit path, which is done with it, saves a copy per job that way (~60 µs)."""
        with self._write():
            check_job_transition(JobStateType.UNDEFINED, job.state)
            doc = job.to_dict()
            # Every job running the same module shares one copy of it (jobs of a benchmark or a
            # sweep resend the same tens of KB each time).
            module, blob = self._keep_module(doc)
            data = dumps_text(doc)
            row = (
                job.id,
                int(job.state),
                dumps_text(job.state_message),
                job.revision,
                job.version,
                job.modify_time,
            )
            try:
                self._db.execute(
                    "INSERT INTO jobs (id, namespace, name, state, state_message, revision,"
                    " version, create_time, modify_time, labels, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job.id,
                        job.namespace,
                        own_name(job),
                        row[1],
                        row[2],
                        job.revision,
                        job.version,
                        job.create_time,
                        job.modify_time,
                        dumps_text(job.labels),
                        len(data) + (len(module) if module else 0),
                    ),
                )
            except sqlite3.IntegrityError:
                if self.job_id_named(job.namespace, job.name) is None:
                    raise
                # The submitter looks the name up in the same transaction first: only a
                # caller that skipped that gets here.
                raise RevisionConflict(
                    f"a job named {job.name!r} already exists in namespace {job.namespace}",
                    hint="submit it again: a job submitted under an existing name updates it",
                ) from None
            self._db.execute(
                "INSERT OR REPLACE INTO job_specs (job_id, version, data, blob)"
                " VALUES (?, ?, ?, ?)",
                (job.id, job.version, data, blob),
            )
            # The new job is read back at once (its first evaluation, the client's wait): cache
            # its spec now instead of having SQLite put the module back into the document and
            # decoding that (~340 us). A caller that keeps its object gets it back unshared:
            # the cache holds a copy decoded from a fresh wire dict, as a read would.
            self._specs.put(
                (job.id, job.version),
                job if handed_over else Job.from_dict(job.to_dict()),
                len(data) + (len(module) if module else 0),
            )
            self._keep_row(row)
            # A new job has no history and no execution yet: its first of each read no SQL.
            self._new_history(job.id)
            self._cache_recent(self._job_executions, job.id, (), _ROW_CACHE)
            JOBS_SUBMITTED.inc()

    def get_job(self, job_id: str) -> Job:
        row = self._job_rows.get(job_id)
        if row is None:
            dirty = self._dirty_jobs.get(job_id)
            row = (
                dirty[1]
                if dirty is not None
                else self._db.execute(f"SELECT {_STATE_COLUMNS} WHERE id = ?", (job_id,)).fetchone()
            )
            if row is None:
                raise JobNotFound(f"job not found: {job_id}")
            self._keep_row(row)
        else:
            self._job_rows.move_to_end(job_id)
        # The spec is read (and its module put back by SQLite) only when not cached: a
        # cached job costs at most one small row.
        spec = self._specs.get((row[0], row[4]))
        if spec is not None:
            return with_state(spec, row)
        doc = self._db.execute(f"SELECT {_SPEC_DOCUMENT}", (row[0], row[4])).fetchone()
        if doc is None:
            raise JobNotFound(f"job not found: {job_id}")
        return self._decode((*row, str(doc[0])))

    def _decode(self, row: JobRow) -> Job:
        """The job of ``row``: its spec decoded once per version (cached), its state from
        the row's columns."""
        key = (row[0], row[4])
        spec = self._specs.get(key)
        if spec is None:
            spec = Job.from_dict(json.loads(row[6]))
            self._specs.put(key, spec, len(row[6]))
        return with_state(spec, row)

    def resolve_job_id(self, ref: str, namespace: str = "") -> str:
        """The full ID of the job ``ref`` names: its ID, else the Name of a job in
        ``namespace`` ("": ``default``), else a unique prefix of its ID.

        A full ID wins over a name: IDs are what the API and the CLI print, and a name that
        happens to equal another job's ID must not hide that job. A name wins over a
        prefix: it is an exact match, where a prefix is a guess that changes as jobs are
        added. (Bacalhau tries the name first, then the ID or its prefix.)"""
        if self._logs.get(ref):
            # A job whose history is in memory exists (deleting a job drops its log): a
            # long-poll asks this on every change of the job it follows.
            return ref
        row = self._db.execute("SELECT id FROM jobs WHERE id = ?", (ref,)).fetchone()
        if row is not None:
            return str(row[0])
        if not ref:
            raise JobNotFound("job not found: empty job ID")
        named = self.job_id_named(namespace, ref)
        if named is not None:
            return named
        rows: list[Any] = []
        # Longer than an ID, it is a prefix of none: no LIKE (SQLite refuses patterns over
        # 50,000 bytes, and a long one takes a while to match).
        if len(ref) <= _LONGEST_JOB_ID:
            escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",)
            ).fetchall()
        if not rows:
            raise JobNotFound(
                f"job not found: {_shown(ref)}",
                hint=f"{JobNotFound.default_hint} (names are looked up in namespace "
                f"{_shown(namespace) or _DEFAULT_NAMESPACE})",
            )
        if len(rows) > 1:
            raise MultipleJobsFound(
                f"multiple jobs found for ID prefix {ref}", details={"Field": "job_id"}
            )
        return str(rows[0][0])

    def job_id_named(self, namespace: str, name: str) -> str | None:
        """The ID of the job called ``name`` in ``namespace`` ("": ``default``), or None.
        One indexed read: a job with a name of its own is in ``jobs_by_name``; a job named
        by its ID is found by that ID, in its namespace."""
        if not name:
            return None
        row = self._db.execute(
            "SELECT id FROM jobs WHERE namespace = ?1 AND name = ?2 UNION ALL"
            " SELECT id FROM jobs WHERE id = ?2 AND namespace = ?1 AND name IS NULL LIMIT 1",
            (_bindable(namespace or _DEFAULT_NAMESPACE), _bindable(name)),
        ).fetchone()
        return str(row[0]) if row is not None else None

    def release_name(self, job_id: str) -> None:
        """Job ``job_id`` is no longer found by its name (its spec keeps it): the name is
        taken by a new job, as a client of Bacalhau before v1.8 makes one (see
        ``JobSubmission.submit_job``). The caller holds the transaction that creates it."""
        with self._write():
            self._db.execute("UPDATE jobs SET name = NULL WHERE id = ?", (job_id,))

    def jobs_in_states(self, states: list[JobStateType]) -> list[str]:
        if states == [JobStateType.QUEUED]:
            return list(self._queued)
        marks = ",".join("?" for _ in states)
        rows = self._db.execute(
            f"SELECT id FROM jobs WHERE state IN ({marks})", [int(s) for s in states]
        ).fetchall()
        dirty = self._dirty_jobs
        found = [str(r[0]) for r in rows if r[0] not in dirty]
        # The open transaction's state changes are written at its commit: overlay them.
        wanted = {int(s) for s in states}
        return found + [job_id for job_id, (_, row) in dirty.items() if row[1] in wanted]

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
        row = (job_id, int(new_state), dumps_text(message), job.revision, job.version, now)
        # Kept as the job's state columns, written when the transaction commits (the spec
        # is not rewritten: a state change is one small row).
        with self._write_at_commit():
            dirty = self._dirty_jobs.get(job_id)
            base = job.revision - 1 if dirty is None else dirty[0]
            self._cache(self._dirty_jobs, job_id, (base, row))
            self._keep_row(row)
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
                    job_state_previous=old,
                    job_state_new=new_state,
                    job_version=job.version,
                )
            )
        return job

    def _write_jobs(self) -> None:
        """Write the state columns of the jobs the open transaction changed, each once (just
        before it commits), compare-and-set on the revision their row had."""
        if not self._dirty_jobs:
            return
        cur = self._db.executemany(
            "UPDATE jobs SET state = ?, state_message = ?, revision = ?, modify_time = ?"
            " WHERE id = ? AND revision = ?",
            [
                (row[1], row[2], row[3], row[5], job_id, base)
                for job_id, (base, row) in self._dirty_jobs.items()
            ],
        )
        if cur.rowcount != len(self._dirty_jobs):
            raise RevisionConflict("a job changed concurrently")

    def add_job_version(self, job_id: str, *, event: Event, spec: Job | None = None) -> Job:
        """A new version of a job (``Version`` + 1), Pending, with a JobLevel history item:
        its spec again (a rerun), or ``spec`` in its place (the job submitted again under its
        name: its ID, name, namespace and create time stay the job's). Earlier versions'
        specs stay (see :meth:`job_versions`); their executions are the scheduler's to stop.
        A new version starts a new life of the job, not a transition of the old one, so any
        state may be left."""
        job = self.get_job(job_id)
        now = now_ns()
        new = job.copy() if spec is None else spec.copy()
        new.id, new.name, new.namespace = job.id, job.name, job.namespace
        new.create_time = job.create_time
        new.version = job.version + 1
        new.state = JobStateType.PENDING
        new.state_message = ""
        new.state_details = {}
        new.revision = job.revision + 1
        new.modify_time = now
        new.meta[VERSION_START_META] = str(now)  # its timeouts count from here
        doc = new.to_dict()
        with self._atomic():
            # A state change of the job still to be written is replaced by this whole row.
            pending = self._dirty_jobs.get(job_id)
            base = job.revision if pending is None else pending[0]
            if pending is not None:
                self._uncache(self._dirty_jobs, job_id)
            module, blob = self._keep_module(doc)  # shared with earlier versions, as at create
            data = dumps_text(doc)
            self._db.execute(
                "INSERT INTO job_specs (job_id, version, data, blob) VALUES (?, ?, ?, ?)",
                (job_id, new.version, data, blob),
            )
            # Labels and size follow the spec (listing filters and pages on them); the name
            # and namespace do not change.
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, state_message = ?, revision = ?, version = ?,"
                " modify_time = ?, labels = ?, size = ? WHERE id = ? AND revision = ?",
                (
                    int(new.state),
                    dumps_text(""),
                    new.revision,
                    new.version,
                    now,
                    dumps_text(new.labels),
                    len(data) + (len(module) if module else 0),
                    job_id,
                    base,
                ),
            )
            if cur.rowcount != 1:
                raise RevisionConflict(f"job {job_id} changed concurrently")
            self._keep_row((job_id, int(new.state), dumps_text(""), new.revision, new.version, now))
            self.add_history(
                JobHistory(
                    seq_num=0,
                    type=HistoryType.JOB,
                    job_id=job_id,
                    event=event,
                    time=now,
                    new_revision=new.revision,
                    job_state_previous=job.state,
                    job_state_new=new.state,
                    job_version=new.version,
                )
            )
        return new

    def job_versions(self, job_id: str, *, version: int | None = None) -> list[Job]:
        """Every stored version of a job's spec, oldest first (each as submitted or rerun),
        or only ``version`` (none when the job has no such version)."""
        self.get_job(job_id)  # JobNotFound for an unknown job
        which = "" if version is None else " AND s.version = ?"
        args = (job_id,) if version is None else (job_id, version)
        rows = self._db.execute(
            "SELECT CASE WHEN s.blob IS NULL THEN s.data ELSE json_set(s.data,"
            f" '{MODULE_JSON_PATH}', (SELECT b.data FROM blobs b WHERE b.hash = s.blob)) END"
            f" FROM job_specs s WHERE s.job_id = ?{which} ORDER BY s.version",
            args,
        ).fetchall()
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    def module(self, digest: str) -> str | None:
        """The inline module (its ``data:`` URL) stored once for the jobs that carry it,
        by the SHA-256 of the URL (hex); None when no stored job carries it."""
        row = self._db.execute("SELECT data FROM blobs WHERE hash = ?", (digest,)).fetchone()
        return str(row[0]) if row is not None else None
