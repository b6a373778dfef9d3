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

:class:`JobStore` is one object built from the parts of the store, each in a module of its
own over the same connection and transactions:

- ``_store_schema``: tables, indexes and the migrations of earlier layouts;
- ``_store_transactions``: transactions, savepoints, the owning task, pending changes;
- ``_store_history``: history items, each job's log in memory, long-poll waiters;
- ``_store_jobs``: jobs, their specs per version, inline modules kept by hash;
- ``_store_listing``: pages of jobs in SQL and the jobs of a page;
- ``_store_executions``: executions, and what runs where (for ranking);
- ``_store_evaluations``: evaluations and idempotency tokens;
- ``_store_retention``: deletion of old terminal jobs, incremental vacuum;
- ``_store_reputation``: agreement counts per compute node.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from pathlib import Path

from bacalhau._wal_checkpoints import BackgroundCheckpoints
from bacalhau.errors import Unavailable
from bacalhau.orchestrator._store_evaluations import EvaluationRecords
from bacalhau.orchestrator._store_executions import ExecutionRecords
from bacalhau.orchestrator._store_jobs import SpecCache
from bacalhau.orchestrator._store_listing import (
    JOB_ORDER_COLUMNS,
    JobListing,
    StoredJobPage,
    decode_jobs,
)
from bacalhau.orchestrator._store_reputation import NodeReputationCounts
from bacalhau.orchestrator._store_retention import StoreRetention
from bacalhau.orchestrator._store_schema import open_database

__all__ = ["JOB_ORDER_COLUMNS", "JobStore", "StoredJobPage", "decode_jobs"]


class JobStore(
    JobListing, ExecutionRecords, EvaluationRecords, StoreRetention, NodeReputationCounts
):
    """SQLite-backed store of the requester's state."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        try:
            self._open()
        except sqlite3.Error as err:
            # A damaged or unreadable file: said with its path, not as a traceback.
            raise Unavailable(
                f"cannot open the job store {self._path}: {err}",
                hint="restore the file from a backup, or move it away to start with an empty "
                "store (its jobs are then forgotten)",
                component="JobStore",
            ) from err

    def _open(self) -> None:
        self._db = open_database(self._path)
        # Checkpoints made off the event loop (see _wal_checkpoints).
        self._checkpoints = BackgroundCheckpoints(self._path)
        self._checkpoints.take_over(self._db)
        self._depth = 0
        self._nested = []
        self._doomed = False
        self._owner = None
        self._undo = []
        self._changed = {}
        self._pending_notify = set()
        self._active = {}
        self._pending_active = []
        self._load_active()
        self._specs = SpecCache()
        self._job_rows = OrderedDict()
        self._load_queued()
        self._blobs = {}
        self._executions = OrderedDict()
        self._job_executions = OrderedDict()
        self._logs = OrderedDict()
        self._seqs = OrderedDict()
        self._pending_history = []
        self._dirty_executions = {}
        self._dirty_jobs = {}
        self._new_evaluations = {}
        self._after_commit = []
        self._load_reputation()
        self._load_open_evaluations()

    def close(self) -> None:
        self._checkpoints.close()
        self._db.close()
