"""Which execution's output a log request gets, and what it is told when there is none."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bacalhau.errors import ExecutionNotFound
from bacalhau.models import ExecutionDesiredStateType as D
from bacalhau.models import ExecutionStateType as E
from bacalhau.models import JobStateType, LogRequest, LogStream, RunCommandResult
from bacalhau.orchestrator._logs import _summary, choose_execution
from tests.orchestrator.test_scheduler import NOW, execution, job


def test_a_job_no_node_ran_says_why_it_has_no_output() -> None:
    failed = job()
    failed.state = JobStateType.FAILED
    failed.state_message = "not enough nodes to run job: node a has no GPU"
    with pytest.raises(ExecutionNotFound) as caught:
        choose_execution(failed, [], "")
    assert caught.value.message == (
        "no executions found for job j-1 (it is Failed: not enough nodes to run job: "
        "node a has no GPU)"
    )
    assert "bacalhau job describe j-1" in caught.value.hint
    pending = job()
    with pytest.raises(ExecutionNotFound) as caught:
        choose_execution(pending, [], "")
    assert caught.value.message == "no executions found for job j-1"


def test_the_run_that_produced_the_result_wins_over_a_late_touched_failure() -> None:
    """A job completed on node b after node a was lost; a restarted a then reported its run,
    touching the failed execution last. The completed run is the job's output."""
    done = replace(execution("e-done", "b", E.COMPLETED, D.RUNNING), modify_time=NOW + 5)
    lost = replace(execution("e-lost", "a", E.FAILED, D.STOPPED), modify_time=NOW + 9)
    assert choose_execution(job(), [lost, done], "").id == "e-done"
    running = replace(execution("e-run", "c", E.RUNNING, D.RUNNING), modify_time=NOW + 1)
    assert choose_execution(job(), [lost, done, running], "").id == "e-run"
    other = replace(execution("e-old", "c", E.FAILED, D.STOPPED), modify_time=NOW + 1)
    assert choose_execution(job(), [other, lost], "").id == "e-lost"


def test_a_replayed_summary_resumes_at_the_bytes_asked_for() -> None:
    """A node that no longer has a finished execution's output: its kept summary is
    replayed from the bytes a resuming follower names, or its tail, each chunk saying where
    it starts and whose it is."""
    done = replace(
        execution("e-done", "b", E.COMPLETED, D.RUNNING),
        run_output=RunCommandResult(stdout="a\nbb\nccc\n", stderr="x\ny\n"),
    )
    resumed = _summary(done, 0, LogRequest("e-done", stdout_from=5, stderr_from=2))
    assert [(c.stream, c.offset, c.data, c.execution_id) for c in resumed] == [
        (LogStream.STDOUT, 5, b"ccc\n", "e-done"),
        (LogStream.STDERR, 2, b"y\n", "e-done"),
    ]
    tail = _summary(done, 1, LogRequest("e-done", tail=1))
    assert [(c.stream, c.offset, c.data) for c in tail] == [
        (LogStream.STDOUT, 5, b"ccc\n"),
        (LogStream.STDERR, 2, b"y\n"),
    ]
    past = _summary(done, 0, LogRequest("e-done", stdout_from=10, stderr_from=99))
    assert past == []
