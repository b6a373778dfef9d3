"""Which execution's output a log request gets, and what it is told when there is none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bacalhau.errors import ExecutionNotFound, Unavailable
from bacalhau.models import (
    Execution,
    Job,
    JobStateType,
    LogChunk,
    LogRequest,
    LogStream,
    RunCommandResult,
)
from bacalhau.models import ExecutionDesiredStateType as D
from bacalhau.models import ExecutionStateType as E
from bacalhau.orchestrator._logs import ExecutionLogs, _summary, choose_execution
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
    resumed = _summary(done, LogRequest("e-done", stdout_from=5, stderr_from=2))
    assert [(c.stream, c.offset, c.data, c.execution_id) for c in resumed] == [
        (LogStream.STDOUT, 5, b"ccc\n", "e-done"),
        (LogStream.STDERR, 2, b"y\n", "e-done"),
    ]
    tail = _summary(done, LogRequest("e-done", tail=1))
    assert [(c.stream, c.offset, c.data) for c in tail] == [
        (LogStream.STDOUT, 5, b"ccc\n"),
        (LogStream.STDERR, 2, b"y\n"),
    ]
    past = _summary(done, LogRequest("e-done", stdout_from=10, stderr_from=99))
    assert past == []


class _OneExecution:
    """A job with one execution, whose state the test moves on."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.job = job()
        self.job.state = JobStateType.RUNNING

    async def get_job(self, job_id: str) -> Job:
        return self.job

    async def list_executions(self, job_id: str) -> list[Execution]:
        return [self.execution]


class _NodeGoneMidStream:
    """Gives the execution's first lines, then loses the node; asked again, gives the rest
    from the byte asked for."""

    OUTPUT = b"a\nb\nc\nd\n"

    def __init__(self) -> None:
        self.requests: list[LogRequest] = []
        self.reachable = True

    async def stream_logs(self, node_id: str, request: LogRequest) -> AsyncIterator[LogChunk]:
        self.requests.append(request)
        if len(self.requests) == 1:
            yield LogChunk(LogStream.STDOUT, 0, self.OUTPUT[:4])
            self.reachable = False
            raise Unavailable("node-b went away")
        start = request.stdout_from
        yield LogChunk(LogStream.STDOUT, start, self.OUTPUT[start:])


async def test_a_follow_whose_node_goes_out_of_reach_goes_on_where_it_was() -> None:
    """The followed execution's node is out of reach mid-way (lost, or not heard yet by a
    requester just restarted), and the execution ends meanwhile: once the node is heard
    again, the follow goes on from the byte it had reached, not ending with half the
    output."""
    jobs = _OneExecution(execution("e-1", "b", E.RUNNING, D.RUNNING))
    source = _NodeGoneMidStream()
    polls = 0

    async def sleep(_: float) -> None:
        nonlocal polls
        polls += 1
        if polls == 3:  # the execution ended meanwhile, and the node is heard again
            jobs.execution = replace(jobs.execution, compute_state=E.COMPLETED)
            source.reachable = True

    logs = ExecutionLogs(
        jobs=jobs, source=source, sleep=sleep, reachable=lambda _: source.reachable
    )
    stream = await logs.open("j-1", follow=True)
    chunks = [chunk async for chunk in stream]
    assert b"".join(c.data for c in chunks) == _NodeGoneMidStream.OUTPUT
    assert [c.execution_id for c in chunks] == ["e-1", "e-1"]
    assert [r.stdout_from for r in source.requests] == [0, 4]
    assert logs.open_streams == 0
