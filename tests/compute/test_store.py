from __future__ import annotations

from pathlib import Path

import pytest

from bacalhau.compute import ExecutionStore, LocalExecution
from bacalhau.errors import InvalidRequest, InvalidTransition, RevisionConflict
from bacalhau.models import (
    BidResult,
    ComputeFailure,
    Event,
    LocalExecutionState,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from tests.compute.jobs import make_execution

L = LocalExecutionState


def run_to(store: ExecutionStore, record: LocalExecution, *states: L) -> LocalExecution:
    for state in states:
        record = store.transition(record, state)
    return record


def test_create_get_and_reopen(tmp_path: Path) -> None:
    execution = make_execution("echo hi", publisher="local", priority=3)
    with ExecutionStore(tmp_path / "compute.db") as store:
        created = store.create(execution, requester_id="req-1", message="bid")
        assert created.revision == 1 and created.state is L.CREATED
    with ExecutionStore(tmp_path / "compute.db") as store:
        again = store.get(execution.id)
    assert again.requester_id == "req-1"
    assert again.message == "bid"
    assert again.job.to_dict() == execution.job.to_dict()  # type: ignore[union-attr]
    assert again.execution.to_dict() == execution.to_dict(v152=True)
    assert again.create_time == created.create_time


def test_transitions_follow_the_state_machine(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        record = store.create(make_execution(), requester_id="r")
        with pytest.raises(InvalidTransition):
            store.transition(record, L.COMPLETED)
        record = run_to(store, record, L.BID_ACCEPTED, L.RUNNING, L.PUBLISHING)
        output = RunCommandResult(stdout="hi\n", exit_code=3)
        published = SpecConfig(type="urlDownload", params={"URL": "http://x/e.tar.gz"})
        done = store.transition(record, L.COMPLETED, run_output=output, published_result=published)
        assert done.revision == 5
        with pytest.raises(InvalidTransition):
            store.transition(done, L.FAILED)
        stored = store.get(record.id)
        assert stored.state is L.COMPLETED
        assert store.state(record.id) is L.COMPLETED  # the state alone, as get() has it
        assert store.state("e-unknown") is None
        assert stored.run_output == output
        assert stored.published_result == published
        assert stored.revision == 5


def test_compare_and_set_on_revision(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        record = store.create(make_execution(), requester_id="r")
        accepted = store.transition(record, L.BID_ACCEPTED)
        with pytest.raises(RevisionConflict):
            store.transition(record, L.CANCELLED)  # stale copy: revision 1
        assert store.get(record.id).state is L.BID_ACCEPTED
        store.transition(accepted, L.CANCELLED)
        with pytest.raises(RevisionConflict):
            store.create(record.execution, requester_id="r")


def test_create_refuses_bad_input(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        execution = make_execution()
        with pytest.raises(InvalidRequest):
            store.create(execution, requester_id="r", state=L.RUNNING)
        execution.job = None
        with pytest.raises(InvalidRequest):
            store.create(execution, requester_id="r")


def test_callbacks_are_written_with_the_state_change(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    execution = make_execution()
    result = RunResult(
        execution_id=execution.id,
        job_id=execution.job_id,
        node_id="n",
        published_result=SpecConfig(type="urlDownload", params={"URL": "http://h/e.tar.gz"}),
        run_output=RunCommandResult(stdout="out", stderr="err", exit_code=1),
    )
    bid = BidResult(
        execution_id=execution.id,
        job_id=execution.job_id,
        node_id="n",
        accepted=True,
        event=Event(message="ok", topic="Bidding", timestamp=1_700_000_000_123_456_789),
    )
    with ExecutionStore(db) as store:
        record = store.create(execution, requester_id="req", callback=bid)
        record = run_to(store, record, L.BID_ACCEPTED, L.RUNNING)
        with pytest.raises(InvalidTransition):
            store.transition(record, L.BID_REJECTED, callback=result)
        store.transition(record, L.COMPLETED, callback=result)
    with ExecutionStore(db) as store:
        assert store.callback_requesters() == ["req"]
        entries = store.pending_callbacks("req")
        assert [e.message for e in entries] == [bid, result]  # order kept, nothing extra
        store.delete_callback(entries[0].seq)
        assert [e.message for e in store.pending_callbacks("req")] == [result]
        assert store.pending_callbacks("someone-else") == []


def test_restart_fails_interrupted_executions(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with ExecutionStore(db) as store:
        created = store.create(make_execution(), requester_id="r")
        queued = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        running = run_to(store, store.create(make_execution(), requester_id="r"), L.BID_ACCEPTED)
        running = store.transition(running, L.RUNNING)
        publishing = store.create(make_execution(), requester_id="r2", state=L.BID_ACCEPTED)
        publishing = run_to(store, publishing, L.RUNNING, L.PUBLISHING)
        done = store.create(make_execution(), requester_id="r", state=L.BID_REJECTED)
    # The process "crashed" here; a new one opens the same file.
    with ExecutionStore(db) as store:
        failed = store.recover_interrupted(message="node restarted while the execution was running")
        assert {r.id for r in failed} == {running.id, publishing.id}
        assert store.get(created.id).state is L.CREATED
        assert store.get(queued.id).state is L.BID_ACCEPTED
        assert store.get(done.id).state is L.BID_REJECTED
        for record in (running, publishing):
            stored = store.get(record.id)
            assert stored.state is L.FAILED
            assert stored.message == "node restarted while the execution was running"
        (entry,) = store.pending_callbacks("r")
        assert isinstance(entry.message, ComputeFailure)
        assert entry.message.execution_id == running.id
        details = entry.message.event.details
        assert details["IsError"] == "true"
        assert details["FailsExecution"] == "true"
        assert details["Retryable"] == "true"
        assert details["ErrorCode"] == "ExecutionInterrupted"
        assert entry.message.event.message == "node restarted while the execution was running"
        assert len(store.pending_callbacks("r2")) == 1
        assert store.recover_interrupted(message="again") == []  # idempotent


def test_prune_forgets_old_finished_executions(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        old = store.create(make_execution(), requester_id="r", state=L.BID_REJECTED)
        reported = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        failure = ComputeFailure(
            execution_id=reported.id, job_id=reported.job_id, node_id="n", event=Event()
        )
        store.transition(reported, L.FAILED, callback=failure)
        live = store.create(make_execution(), requester_id="r")
        pruned = store.prune(finished_before_ns=live.modify_time + 10**12)
        assert pruned == [old.id]  # the failed one still has a callback to deliver
        assert store.find(old.id) is None
        assert store.find(live.id) is not None
        assert [r.id for r in store.executions(states=[L.FAILED])] == [reported.id]


def test_prune_works_in_batches_oldest_first(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        done = [
            store.create(make_execution(), requester_id="r", state=L.BID_REJECTED) for _ in range(5)
        ]
        cutoff = done[-1].modify_time + 10**12
        assert store.prune(finished_before_ns=cutoff, limit=2) == [r.id for r in done[:2]]
        assert store.prune(finished_before_ns=cutoff, limit=2) == [r.id for r in done[2:4]]
        assert store.prune(finished_before_ns=cutoff, limit=2) == [done[4].id]
        assert store.prune(finished_before_ns=cutoff, limit=2) == []


def test_reads_match_a_reopened_store_at_every_step(tmp_path: Path) -> None:
    # Reads of recent executions reuse their decoded document: they must give what a store
    # reading everything from disk gives, through every state change.
    execution = make_execution("echo hi", publisher="local")
    with ExecutionStore(tmp_path / "c.db") as store:
        record = store.create(execution, requester_id="r", message="bid")
        output = RunCommandResult(stdout="hi\n", exit_code=0)
        published = SpecConfig(type="urlDownload", params={"URL": "http://x/e.tar.gz"})
        steps = [
            (L.BID_ACCEPTED, {}),
            (L.RUNNING, {"message": "running"}),
            (L.PUBLISHING, {}),
            (L.COMPLETED, {"run_output": output, "published_result": published}),
        ]
        for state, changes in steps:
            record = store.transition(record, state, **changes)  # type: ignore[arg-type]
            with ExecutionStore(tmp_path / "c.db") as fresh:
                assert store.get(record.id) == fresh.get(record.id) == record


def test_an_unfinished_execution_is_read_without_a_query(tmp_path: Path) -> None:
    # The store writes every change of an execution itself, so it knows an unfinished one's
    # record: the pipeline's and the endpoint's reads of a running execution cost no query.
    with ExecutionStore(tmp_path / "c.db") as store:
        record = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        running = store.transition(record, L.RUNNING)
        queries: list[str] = []
        store._db.set_trace_callback(queries.append)
        assert store.get(record.id) == running
        with pytest.raises(RevisionConflict):
            store.transition(record, L.RUNNING)  # a stale record: the current one is known
        assert store.get(record.id) == running
        store._db.set_trace_callback(None)
    assert [q.split()[0] for q in queries] == ["UPDATE"]  # the failed compare-and-set only
