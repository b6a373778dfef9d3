"""Deferred writes: Running and Publishing are committed with what follows them in the same
loop turn."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from bacalhau.compute import ExecutionStore
from bacalhau.errors import InternalError, RevisionConflict
from bacalhau.models import LocalExecutionState, RunCommandResult, RunResult, SpecConfig
from tests.compute.jobs import make_execution

L = LocalExecutionState


def committed_state(db: Path, execution_id: str) -> str:
    """The state another connection (a node restarting after a crash) would read."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT state FROM executions WHERE id = ?", (execution_id,))
        return str(row.fetchone()[0])


def result_of(execution_id: str, job_id: str) -> RunResult:
    return RunResult(
        execution_id=execution_id,
        job_id=job_id,
        node_id="n",
        published_result=SpecConfig(),
        run_output=RunCommandResult(exit_code=0),
    )


async def test_publishing_and_completed_in_one_turn_are_one_commit(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with ExecutionStore(db) as store:
        execution = make_execution()
        record = store.create(execution, requester_id="r", state=L.BID_ACCEPTED)
        record = store.transition(record, L.RUNNING)
        record = store.transition(record, L.PUBLISHING, defer=True)
        assert store.get(record.id).state is L.PUBLISHING  # seen here at once...
        assert committed_state(db, record.id) == L.RUNNING.value  # ...not yet committed
        done = store.transition(
            record, L.COMPLETED, callback=result_of(record.id, execution.job_id)
        )
        assert done.revision == 4
        assert committed_state(db, record.id) == L.COMPLETED.value
        assert [e.message.execution_id for e in store.pending_callbacks("r")] == [record.id]


async def test_a_deferred_write_is_committed_when_the_turn_ends(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with ExecutionStore(db) as store:
        record = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        record = store.transition(record, L.RUNNING)
        store.transition(record, L.PUBLISHING, defer=True)
        await asyncio.sleep(0)  # a publish that leaves the loop
        assert committed_state(db, record.id) == L.PUBLISHING.value


async def test_a_refused_write_joining_deferred_ones_undoes_only_itself(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with ExecutionStore(db) as store:
        execution = make_execution()
        record = store.create(execution, requester_id="r", state=L.BID_ACCEPTED)
        record = store.transition(record, L.RUNNING)
        store.transition(record, L.PUBLISHING, defer=True)
        with pytest.raises(RevisionConflict):
            store.create(execution, requester_id="r")  # already exists
        with pytest.raises(RevisionConflict):
            store.transition(record, L.FAILED)  # stale revision
        await asyncio.sleep(0)
        assert committed_state(db, record.id) == L.PUBLISHING.value


def test_without_a_loop_a_deferred_write_is_committed_at_once(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with ExecutionStore(db) as store:
        record = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        record = store.transition(record, L.RUNNING)
        store.transition(record, L.PUBLISHING, defer=True)
        assert committed_state(db, record.id) == L.PUBLISHING.value


async def test_only_moves_a_restart_can_carry_on_from_can_be_deferred(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        record = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        running = store.transition(record, L.RUNNING, defer=True)
        with pytest.raises(InternalError):
            store.transition(running, L.COMPLETED, defer=True)  # a final state never waits
        created = store.create(make_execution(), requester_id="r")
        with pytest.raises(InternalError):
            store.transition(created, L.BID_ACCEPTED, defer=True)  # accepted: must be kept
        assert store.get(created.id).state is L.CREATED


async def test_a_run_ending_in_its_turn_is_one_commit_and_a_crash_before_it_reruns(
    tmp_path: Path,
) -> None:
    """Running deferred: a run that ends within the loop turn that started it (an inline
    WASM run) commits Running, Publishing and its end together; a crash before that commit
    leaves the execution BidAccepted, which a restart runs again (nothing of the run left
    the node), instead of failing it as interrupted."""
    db = tmp_path / "c.db"
    with ExecutionStore(db) as store:
        execution = make_execution()
        record = store.create(execution, requester_id="r", state=L.BID_ACCEPTED)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        record = store.transition(record, L.RUNNING, defer=True)
        assert committed_state(db, record.id) == L.BID_ACCEPTED.value  # what a crash leaves
        crashed = tmp_path / "crashed"  # the files as a crash now would leave them
        crashed.mkdir()
        for name in ("c.db", "c.db-wal"):
            shutil.copy(tmp_path / name, crashed / name)
        with ExecutionStore(crashed / "c.db") as restarted:
            assert restarted.recover_interrupted(message="restarted") == []
            assert restarted.get(record.id).state is L.BID_ACCEPTED
        record = store.transition(record, L.PUBLISHING, defer=True)
        store.transition(record, L.COMPLETED, callback=result_of(record.id, execution.job_id))
        store._db.set_trace_callback(None)
        assert committed_state(db, record.id) == L.COMPLETED.value
        verbs = [s.split()[0] for s in statements]
        assert (verbs.count("UPDATE"), verbs.count("COMMIT")) == (1, 1)  # the row written once


async def test_a_lone_deferred_change_is_one_statement_at_the_turn_end(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with ExecutionStore(db) as store:
        record = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        running = store.transition(record, L.RUNNING, defer=True)
        assert statements == []
        assert store.state(record.id) is L.RUNNING  # read from memory meanwhile
        with pytest.raises(RevisionConflict):
            store.transition(record, L.RUNNING, defer=True)  # a stale record
        await asyncio.sleep(0)
        store._db.set_trace_callback(None)
        assert [s.split()[0] for s in statements] == ["UPDATE"]
        assert committed_state(db, record.id) == L.RUNNING.value
        assert store.get(record.id) == running


async def test_closing_commits_what_is_deferred(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = ExecutionStore(db)
    record = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
    record = store.transition(store.transition(record, L.RUNNING), L.PUBLISHING, defer=True)
    store.close()
    await asyncio.sleep(0)  # the scheduled commit finds nothing to do
    assert committed_state(db, record.id) == L.PUBLISHING.value
