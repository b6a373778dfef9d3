"""What the job store keeps in memory: rows it wrote or read (jobs' state columns,
executions, which executions a job has, history sequence numbers, node reputation, open
evaluations, queued jobs) are read without SQL, and a rolled-back transaction or nested
block leaves them as the rows are; nested blocks take one savepoint between them, at their
first write.

Each check compares the store against a second store opened on the same file, which reads
everything from SQL."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from bacalhau.errors import InternalError, JobNotFound
from bacalhau.models import (
    Evaluation,
    Event,
    Execution,
    ExecutionDesiredStateType,
    ExecutionStateType,
    JobHistory,
    JobStateType,
    now_ns,
)
from bacalhau.orchestrator import JobStore
from tests.orchestrator.test_store import _job

E = ExecutionStateType


def _execution(ex_id: str, job_id: str, created: int) -> Execution:
    return Execution(
        id=ex_id, job_id=job_id, node_id="n-1", namespace="default",
        desired_state=ExecutionDesiredStateType.PENDING, compute_state=E.NEW,
        create_time=created,
    )  # fmt: skip


def _evaluation(ev_id: str) -> Evaluation:
    return Evaluation(
        id=ev_id, job_id="j-1", namespace="default", type="batch", triggered_by="job-register"
    )


def _seen(store: JobStore, job_id: str) -> tuple[object, ...]:
    """What a reader gets of a job: its state, its executions, its history, the reputation."""
    job = store.get_job(job_id)
    return (
        (job.state, job.state_message, job.revision, job.modify_time),
        [(e.id, e.compute_state, e.revision) for e in store.executions_of(job_id)],
        [(h.seq_num, h.type, h.event.message) for h in store.history_of(job_id)],
        store.reputation_counts(),
        store.jobs_in_states([JobStateType.QUEUED]),
    )


class _Boom(Exception):
    pass


def _stored(tmp_path: Path) -> JobStore:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_job("j-1"))
        store.create_execution(_execution("e-b", "j-1", 10))
    store.update_execution("e-b", compute_state=E.ASK_FOR_BID)
    store.record_verdicts({"n-1": True})
    return store


def _change_everything(store: JobStore) -> None:
    store.update_execution("e-b", compute_state=E.BID_ACCEPTED)
    store.create_execution(_execution("e-a", "j-1", 10))
    store.update_job_state("j-1", JobStateType.QUEUED, message="waiting")
    store.record_verdicts({"n-1": False, "n-2": True})


def test_a_rolled_back_nested_block_leaves_memory_as_the_rows_are(tmp_path: Path) -> None:
    store = _stored(tmp_path)
    before = _seen(store, "j-1")
    with store.transaction():
        with contextlib.suppress(_Boom), store.transaction():
            _change_everything(store)
            assert _seen(store, "j-1") != before  # the block reads its own writes
            raise _Boom
        assert _seen(store, "j-1") == before
        store.update_execution("e-b", compute_state=E.BID_ACCEPTED)  # numbered after it
    fresh = JobStore(tmp_path / "jobs.db")
    assert _seen(store, "j-1") == _seen(fresh, "j-1")
    assert [h.seq_num for h in store.history_of("j-1")] == [1, 2]


def test_a_rolled_back_transaction_leaves_memory_as_the_rows_are(tmp_path: Path) -> None:
    store = _stored(tmp_path)
    with pytest.raises(_Boom), store.transaction():
        _change_everything(store)
        raise _Boom
    fresh = JobStore(tmp_path / "jobs.db")
    assert _seen(store, "j-1") == _seen(fresh, "j-1")
    _change_everything(store)
    assert _seen(store, "j-1") == _seen(JobStore(tmp_path / "jobs.db"), "j-1")


def test_kept_rows_are_read_without_sql_and_in_sql_order(tmp_path: Path) -> None:
    store = _stored(tmp_path)
    _change_everything(store)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    seen = _seen(store, "j-1")
    store.add_history(
        JobHistory(seq_num=0, type="JobLevel", job_id="j-1", event=Event(), time=now_ns())
    )
    store._db.set_trace_callback(None)
    assert not [s for s in statements if s.startswith("SELECT")], statements
    # Same create time: ordered by ID, as SQL orders them.
    assert [e[0] for e in seen[1]] == ["e-a", "e-b"]  # type: ignore[index]
    assert seen[3:] == ({"n-1": (1, 1), "n-2": (1, 0)}, ["j-1"])
    assert _seen(store, "j-1") == _seen(JobStore(tmp_path / "jobs.db"), "j-1")


def test_nested_blocks_share_one_savepoint_taken_at_their_first_write(tmp_path: Path) -> None:
    store = _stored(tmp_path)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    with store.transaction():
        with store.transaction(), store.transaction():
            store.get_job("j-1")  # reads take no savepoint
        with store.transaction():
            with contextlib.suppress(_Boom), store.transaction():
                # (State changes are written at the commit: they need no savepoint.)
                store.update_job_state("j-1", JobStateType.RUNNING)
                store.record_verdicts({"n-1": False})
                raise _Boom
            store.update_execution("e-b", compute_state=E.BID_ACCEPTED)
    store._db.set_trace_callback(None)
    assert [s.split()[0] for s in statements if s.split()[0] in ("SAVEPOINT", "ROLLBACK")] == [
        "SAVEPOINT",
        "ROLLBACK",
    ]
    fresh = JobStore(tmp_path / "jobs.db")
    assert fresh.get_job("j-1").state == JobStateType.PENDING  # the inner block's undone
    assert fresh.get_execution("e-b").compute_state == E.BID_ACCEPTED  # the outer's kept
    assert _seen(store, "j-1") == _seen(fresh, "j-1")


def test_an_outer_block_that_raises_undoes_the_inner_ones_it_shares_with(tmp_path: Path) -> None:
    store = _stored(tmp_path)
    before = _seen(store, "j-1")
    with store.transaction(), contextlib.suppress(_Boom), store.transaction():
        with store.transaction():
            store.update_job_state("j-1", JobStateType.RUNNING)
        store.update_execution("e-b", compute_state=E.BID_ACCEPTED)
        raise _Boom
    assert _seen(store, "j-1") == before == _seen(JobStore(tmp_path / "jobs.db"), "j-1")


def test_a_write_around_the_store_in_a_nested_block_dooms_the_transaction(
    tmp_path: Path,
) -> None:
    """A nested block's savepoint is taken by the store's own writes: a row changed behind
    its back could not be undone alone, so nothing of the transaction is committed."""
    store = _stored(tmp_path)
    with pytest.raises(InternalError), store.transaction():
        store.update_job_state("j-1", JobStateType.RUNNING)
        with store.transaction():
            store._db.execute("UPDATE executions SET modify_time = 1 WHERE id = 'e-b'")
    fresh = JobStore(tmp_path / "jobs.db")
    assert fresh.get_job("j-1").state == JobStateType.PENDING
    assert fresh.get_execution("e-b").modify_time != 1
    assert _seen(store, "j-1") == _seen(fresh, "j-1")


def test_only_stored_open_evaluations_are_marked_complete(tmp_path: Path) -> None:
    store = _stored(tmp_path)
    store.create_evaluation(_evaluation("ev-1"))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.set_evaluation_status("ev-never-stored", "complete")
    store._db.set_trace_callback(None)
    assert statements == []
    with contextlib.suppress(_Boom), store.transaction():
        store.set_evaluation_status("ev-1", "complete")
        raise _Boom
    reopened = JobStore(tmp_path / "jobs.db")
    assert [e.id for e in reopened.pending_evaluations()] == ["ev-1"]
    # Remembered again after the rollback (and loaded on open).
    reopened.set_evaluation_status("ev-1", "complete")
    assert JobStore(tmp_path / "jobs.db").pending_evaluations() == []
    store.set_evaluation_status("ev-1", "complete")  # already complete: changes nothing
    store.create_evaluation(_evaluation("ev-2"))
    store.set_evaluation_status("ev-2", "complete")
    assert JobStore(tmp_path / "jobs.db").pending_evaluations() == []


def test_deleted_jobs_are_forgotten(tmp_path: Path) -> None:
    store = _stored(tmp_path)
    store.update_execution("e-b", compute_state=E.FAILED)
    store.update_job_state("j-1", JobStateType.FAILED)
    assert store.delete_terminal_jobs(modified_before=now_ns() + 1, limit=10) == ["j-1"]
    with pytest.raises(JobNotFound):
        store.get_job("j-1")
    assert store.executions_of("j-1") == []
    with store.transaction():
        store.create_job(_job("j-1"))  # the same ID again starts afresh
    assert [h.seq_num for h in store.history_of("j-1")] == []
    store.update_job_state("j-1", JobStateType.RUNNING)
    assert [h.seq_num for h in store.history_of("j-1")] == [1]
