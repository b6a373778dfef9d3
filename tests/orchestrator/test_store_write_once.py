"""The job store writes each execution row and the history items a transaction changed once,
when it commits: an execution created and moved on in one transaction is one INSERT, one moved
on several times is one UPDATE, a transaction's history items are one statement. Until the
commit, every read (from memory or from SQL) sees the transaction's changes; a nested block
that rolls back drops its own.

Each check compares the store against a second store opened on the same file, which reads
everything from SQL."""

from __future__ import annotations

import contextlib
from pathlib import Path

from bacalhau.models import (
    EvaluationStatus,
    Event,
    ExecutionStateType,
    JobHistory,
    JobStateType,
    now_ns,
)
from bacalhau.orchestrator import JobStore
from tests.orchestrator.test_store import _job
from tests.orchestrator.test_store_memory import _evaluation, _execution, _seen

E = ExecutionStateType


class _Boom(Exception):
    pass


def _traced(store: JobStore) -> list[str]:
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    return statements


def _with_job(tmp_path: Path, *executions: tuple[str, int]) -> JobStore:
    """A store holding job ``j-1`` and its executions (ID, create time), committed."""
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-1"))
        for ex_id, created in executions:
            store.create_execution(_execution(ex_id, "j-1", created))
    return store


def _writes(statements: list[str], table: str) -> list[str]:
    return [
        s.split()[0]
        for s in statements
        if s.split()[0] in ("INSERT", "UPDATE") and f" {table} " in f" {s} "
    ]


def test_a_transaction_writes_each_row_it_changed_once(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    statements = _traced(store)
    with store.transaction():
        store.create_job(_job("j-1"))
        store.create_execution(_execution("e-1", "j-1", 10), Event(message="made"))
        store.update_execution("e-1", compute_state=E.ASK_FOR_BID)
        store.update_execution("e-1", compute_state=E.BID_ACCEPTED)
    # One INSERT per row (an executemany traces each row it binds): the final state.
    assert _writes(statements, "executions") == ["INSERT"]
    assert len(_writes(statements, "history")) == 3  # made, asked, accepted
    statements.clear()
    with store.transaction():
        store.update_execution("e-1", compute_state=E.RUNNING)
        store.update_execution("e-1", compute_state=E.COMPLETED)
    store._db.set_trace_callback(None)
    assert _writes(statements, "executions") == ["UPDATE"]
    fresh = JobStore(tmp_path / "jobs.db")
    assert fresh.get_execution("e-1").compute_state == E.COMPLETED
    assert fresh.get_execution("e-1").revision == store.get_execution("e-1").revision
    assert _seen(store, "j-1") == _seen(fresh, "j-1")
    assert [h.seq_num for h in fresh.history_of("j-1")] == [1, 2, 3, 4, 5]


def test_reads_inside_the_transaction_see_its_changes_even_from_sql(tmp_path: Path) -> None:
    store = _with_job(tmp_path, ("e-old", 5))
    with store.transaction():
        store.update_execution("e-old", compute_state=E.ASK_FOR_BID)
        store.create_execution(_execution("e-new", "j-1", 10))
        store.add_history(
            JobHistory(seq_num=0, type="JobLevel", job_id="j-1", event=Event(), time=now_ns())
        )
        # Nothing of it is in memory's caches: the reads go to SQL, which holds none of it.
        store._executions.clear()
        store._job_executions.clear()
        store._logs.clear()
        assert [(e.id, e.compute_state) for e in store.executions_of("j-1")] == [
            ("e-old", E.ASK_FOR_BID),
            ("e-new", E.NEW),
        ]
        store._executions.clear()
        assert store.get_execution("e-new").compute_state == E.NEW
        assert store.active_jobs_on_node("n-1") == ["j-1"]
        store.update_execution("e-old", compute_state=E.FAILED)
        store.update_execution("e-new", compute_state=E.CANCELLED)
        assert store.active_jobs_on_node("n-1") == []
        assert [h.seq_num for h in store.history_of("j-1")] == [1, 2, 3, 4]
    fresh = JobStore(tmp_path / "jobs.db")
    assert _seen(store, "j-1") == _seen(fresh, "j-1")
    assert fresh.active_jobs_on_node("n-1") == []


def test_a_nested_block_that_rolls_back_drops_only_its_own_changes(tmp_path: Path) -> None:
    store = _with_job(tmp_path, ("e-1", 10))
    with store.transaction():
        store.update_execution("e-1", compute_state=E.ASK_FOR_BID)
        with contextlib.suppress(_Boom), store.transaction():
            store.update_execution("e-1", compute_state=E.BID_ACCEPTED)
            store.create_execution(_execution("e-2", "j-1", 20))
            raise _Boom
        assert [(e.id, e.compute_state) for e in store.executions_of("j-1")] == [
            ("e-1", E.ASK_FOR_BID)
        ]
        store.update_execution("e-1", compute_state=E.FAILED)
    fresh = JobStore(tmp_path / "jobs.db")
    assert [(e.id, e.compute_state) for e in fresh.executions_of("j-1")] == [("e-1", E.FAILED)]
    assert _seen(store, "j-1") == _seen(fresh, "j-1")
    # Asked, then failed: the rolled-back acceptance took no number.
    assert [h.exec_state_new for h in fresh.history_of("j-1")] == [E.ASK_FOR_BID, E.FAILED]
    assert [h.seq_num for h in fresh.history_of("j-1")] == [1, 2]


def test_a_jobs_state_changes_in_one_transaction_are_one_update(tmp_path: Path) -> None:
    store = _with_job(tmp_path)
    statements = _traced(store)
    with store.transaction():
        store.update_job_state("j-1", JobStateType.RUNNING)
        store.update_job_state("j-1", JobStateType.COMPLETED, message="done")
        store._job_rows.clear()  # read from SQL, which holds none of it yet
        assert store.get_job("j-1").state == JobStateType.COMPLETED
        assert store.jobs_in_states([JobStateType.COMPLETED]) == ["j-1"]
        assert store.jobs_in_states([JobStateType.PENDING]) == []
    store._db.set_trace_callback(None)
    assert _writes(statements, "jobs") == ["UPDATE"]
    fresh = JobStore(tmp_path / "jobs.db")
    assert (fresh.get_job("j-1").state, fresh.get_job("j-1").state_message) == (
        JobStateType.COMPLETED,
        "done",
    )
    assert _seen(store, "j-1") == _seen(fresh, "j-1")


def test_a_new_version_replaces_a_pending_state_change(tmp_path: Path) -> None:
    store = _with_job(tmp_path)
    first = store.get_job("j-1")
    with store.transaction():
        store.update_job_state("j-1", JobStateType.FAILED, message="boom")
        store.add_job_version("j-1", event=Event(message="rerun"))
    fresh = JobStore(tmp_path / "jobs.db")
    job = fresh.get_job("j-1")
    assert (job.version, job.state, job.revision) == (
        first.version + 1,
        JobStateType.PENDING,
        first.revision + 2,
    )
    assert _seen(store, "j-1") == _seen(fresh, "j-1")


def test_an_evaluation_made_and_completed_in_one_transaction_is_one_insert(
    tmp_path: Path,
) -> None:
    store = JobStore(tmp_path / "jobs.db")
    statements = _traced(store)
    with store.transaction():
        store.create_evaluation(_evaluation("ev-done"))
        store.set_evaluation_status("ev-done", EvaluationStatus.COMPLETE)
        store.create_evaluation(_evaluation("ev-open"))
        with contextlib.suppress(_Boom), store.transaction():
            store.create_evaluation(_evaluation("ev-undone"))
            store.set_evaluation_status("ev-open", EvaluationStatus.COMPLETE)
            raise _Boom
    store._db.set_trace_callback(None)
    assert _writes(statements, "evaluations") == ["INSERT", "INSERT"]  # one per row bound
    assert [e.id for e in JobStore(tmp_path / "jobs.db").pending_evaluations()] == ["ev-open"]
    assert set(store._open_evaluations) == {"ev-open"}
    with store.transaction():
        store.set_evaluation_status("ev-open", EvaluationStatus.COMPLETE)
    assert JobStore(tmp_path / "jobs.db").pending_evaluations() == []
