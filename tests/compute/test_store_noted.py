"""Callbacks kept in memory for an ask's answer: exactly what the outbox holds for the
execution, or nothing (read from the outbox instead)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bacalhau.compute import ExecutionStore
from bacalhau.errors import RevisionConflict
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


def bid(execution_id: str, job_id: str) -> BidResult:
    return BidResult(execution_id=execution_id, job_id=job_id, node_id="n", accepted=True)


def test_noted_callbacks_are_those_committed_to_the_outbox(tmp_path: Path) -> None:
    execution = make_execution()
    ids = {"execution_id": execution.id, "job_id": execution.job_id, "node_id": "n"}
    with ExecutionStore(tmp_path / "c.db") as store:
        assert store.noted_callbacks("req", execution.id) is None  # not noted: read instead
        store.note_callbacks(execution.id)
        record = store.create(
            execution,
            requester_id="req",
            state=L.BID_ACCEPTED,
            callback=bid(execution.id, execution.job_id),
        )
        record = store.transition(record, L.RUNNING)
        stale = record
        record = store.transition(
            record,
            L.COMPLETED,
            callback=RunResult(**ids, published_result=SpecConfig(), run_output=RunCommandResult()),
        )
        # A compare-and-set that fails commits nothing, and notes nothing.
        with pytest.raises(RevisionConflict):
            store.transition(
                stale, L.FAILED, callback=ComputeFailure(**ids, event=Event(message="no"))
            )
        store.enqueue_callback("req", ComputeFailure(**ids, event=Event(message="no")))
        noted = store.noted_callbacks("req", execution.id)
        assert noted is not None
        read = store.callbacks_of("req", execution.id)
        assert [(e.seq, e.message) for e in noted] == [(e.seq, e.message) for e in read]
        assert len(read) == 3
        assert store.noted_callbacks("another requester", execution.id) == []
        store.forget_noted(execution.id)
        assert store.noted_callbacks("req", execution.id) is None


def test_a_change_that_would_wait_but_carries_a_callback_is_committed_and_noted(
    tmp_path: Path,
) -> None:
    """Only a bare state change waits (see ``_pending_rows``): one carrying a callback is
    committed at once, so the callback is noted for an answer to carry."""
    execution = make_execution()
    with ExecutionStore(tmp_path / "c.db") as store:
        store.note_callbacks(execution.id)
        record = store.create(execution, requester_id="req", state=L.BID_ACCEPTED)
        record = store.transition(record, L.RUNNING, defer=True)
        store.transition(
            record, L.PUBLISHING, defer=True, callback=bid(execution.id, execution.job_id)
        )
        noted = store.noted_callbacks("req", execution.id)
        assert noted is not None
        assert [type(e.message).__name__ for e in noted] == ["BidResult"]
        with sqlite3.connect(tmp_path / "c.db") as conn:
            row = conn.execute("SELECT state FROM executions WHERE id = ?", (execution.id,))
            assert row.fetchone()[0] == L.PUBLISHING.value
