"""Queued jobs, retries and overdue work through a real Orchestrator (SQLite store, broker,
planner, housekeeping) whose compute transport records what it is asked to send
(tests/orchestrator/test_callbacks.py): what a waiting job's history says, what places it
(a node joining, a node publishing more room, an execution ending, not the safety-net timer),
and what the requester does when an execution or a job runs past its timeout."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bacalhau.models import (
    AskForBidRequest,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Event,
    Execution,
    Job,
    JobStateType,
    NodeInfo,
    NodeType,
    Resources,
    RunCommandResult,
    RunResult,
    SpecConfig,
    normalise_job,
    now_ns,
    validate_job,
)
from bacalhau.orchestrator import Orchestrator, SchedulerSettings
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_callbacks import RecordingCompute

CAP = Resources(cpu=4.0, memory=8 * 10**9, disk=10**11)


def _node(node_id: str, engine: str = "noop", free: float = 4.0, queued: float = 0.0) -> NodeInfo:
    return compute_node_info(node_id, engines=(engine,), free=free, queued=queued)


#: The cluster view of each orchestrator a test made (weakly keyed: gone with it).
_VIEWS: weakref.WeakKeyDictionary[Orchestrator, StaticNodeView] = weakref.WeakKeyDictionary()


def _view(o: Orchestrator) -> StaticNodeView:
    return _VIEWS[o]


def _job(cpu: str = "1", **extra: object) -> Job:
    task: dict[str, object] = {
        "Name": "main",
        "Engine": {"Type": "noop"},
        "Resources": {"CPU": cpu, "Memory": "1Gb"},
    }
    task.update(extra.pop("task", {}))  # type: ignore[arg-type]
    return Job.from_dict({"Type": "batch", "Tasks": [task], **extra})


def _orchestrator(tmp_path: Path, compute: RecordingCompute, **settings: float) -> Orchestrator:
    view = StaticNodeView()
    o = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        # The safety-net timer is far away unless a test wants it: whatever places a job
        # within a test is an event (a join, more room, an execution ending).
        settings=SchedulerSettings(
            **{
                "queue_backoff": 30.0,
                "queue_backoff_max": 30.0,
                "retry_delay": 0.0,
                # Two rounds: the tests play the compute node's part step by step.
                "pre_approve": False,
                **settings,
            }
        ),
        housekeeping_interval=0.1,
    )
    _VIEWS[o] = view
    return o


@pytest.fixture
async def orch(tmp_path: Path) -> AsyncIterator[tuple[Orchestrator, RecordingCompute]]:
    compute = RecordingCompute()
    async with _orchestrator(tmp_path, compute) as o:
        yield o, compute


async def _until(orch: Orchestrator, job_id: str, probe: Callable[[Job], bool]) -> Job:
    for _ in range(100):
        job = await orch.get_job(job_id)
        if probe(job):
            return job
        await orch.wait_for_change(job_id, after_seq=orch.store.last_seq(job_id), timeout=0.05)
    raise AssertionError(f"job {job_id} never got there: {job.state.wire} {job.state_message}")


def _queue_events(orch: Orchestrator, job_id: str) -> list[str]:
    return [h.event.message for h in orch.store.history_of(job_id) if h.event.topic == "Queueing"]


async def _start(orch: Orchestrator, compute: RecordingCompute, node: str) -> Execution:
    """Answer the next ask as ``node`` would: bid, and be told to run."""
    who, ask = await compute.next("ask")
    assert who == node and isinstance(ask, AskForBidRequest)
    ex = ask.execution
    await orch.on_bid_complete(BidResult(ex.id, ex.job_id, node, accepted=True))
    await compute.next("accept")
    return ex


async def test_a_waiting_job_says_why_once_per_reason_and_runs_when_a_node_joins(
    tmp_path: Path,
) -> None:
    compute = RecordingCompute()
    # A short safety-net timer: the job is evaluated many times while it waits.
    async with _orchestrator(tmp_path, compute, queue_backoff=0.05, queue_backoff_max=0.05) as o:
        await _view(o).join(_node("docker-1", engine="docker"))
        job_id = (await o.submit_job(_job(task={"Timeouts": {"QueueTimeout": 60}}))).job_id
        await _until(o, job_id, lambda j: j.state == JobStateType.QUEUED)
        await _view(o).join(_node("docker-2", engine="docker"))
        await _until(o, job_id, lambda j: j.state_message.startswith("waiting for a node: 2"))
        await asyncio.sleep(0.5)  # about ten more evaluations
        assert _queue_events(o, job_id) == [
            "Job queued: waiting for a node: 1 node lacks the noop engine",
            "Job queued: waiting for a node: 2 nodes lack the noop engine",
        ]
        await _view(o).join(_node("noop-1"))
        await _start(o, compute, "noop-1")
        assert (await o.get_job(job_id)).state == JobStateType.RUNNING


async def test_a_node_reporting_more_room_gets_the_waiting_job_at_once(
    orch: tuple[Orchestrator, RecordingCompute],
) -> None:
    o, compute = orch
    # Busy: nothing free and 2 CPUs queued, so no headroom left for a 1-CPU job.
    await _view(o).join(_node("busy", free=0.0, queued=2.0))
    job_id = (await o.submit_job(_job())).job_id
    job = await _until(o, job_id, lambda j: j.state == JobStateType.QUEUED)
    assert job.state_message.splitlines()[0] == "waiting for a node: 1 node is full"
    assert not compute.sent
    await _view(o).publish_capacity("busy", available=Resources(cpu=1.0))
    await _start(o, compute, "busy")


async def test_an_execution_ending_frees_its_room_for_the_next_waiting_job(
    orch: tuple[Orchestrator, RecordingCompute],
) -> None:
    o, compute = orch
    await _view(o).join(_node("only"))
    first = (await o.submit_job(_job(cpu="4"))).job_id
    ex = await _start(o, compute, "only")
    # The node says it is busy now; the next job does not fit and waits.
    await _view(o).publish_capacity("only", available=Resources(), queued=Resources(cpu=2))
    second = (await o.submit_job(_job(cpu="2"))).job_id
    await _until(o, second, lambda j: j.state == JobStateType.QUEUED)
    before = _evaluation_passes()
    await o.on_run_complete(
        RunResult(ex.id, first, "only", SpecConfig(type="noop"), RunCommandResult(exit_code=0))
    )
    # Before the node publishes a new record: what the finished execution held is free again.
    who, ask = await compute.next("ask")
    assert who == "only" and isinstance(ask, AskForBidRequest)
    assert ask.execution.job_id == second
    # Placed in the transaction of the report that freed the room, as a new job is in its
    # submit's: no evaluation of its own to store, queue and commit.
    assert _evaluation_passes() == before


def _evaluation_passes() -> float:
    return (
        REGISTRY.get_sample_value("bacalhau_scheduling_passes_total", {"path": "evaluation"}) or 0
    )


async def test_an_execution_past_its_timeout_is_cancelled_on_its_node_and_fails_the_job(
    tmp_path: Path,
) -> None:
    compute = RecordingCompute()
    async with _orchestrator(tmp_path, compute, execution_timeout_grace=0.2) as o:
        await _view(o).join(_node("silent"))
        spec = _job(task={"Timeouts": {"ExecutionTimeout": 1}}, Reschedule={"Attempts": 1})
        job_id = (await o.submit_job(spec)).job_id
        ex = await _start(o, compute, "silent")
        # The node never reports: housekeeping finds the execution overdue.
        who, cancel = await compute.next("cancel")
        assert who == "silent" and isinstance(cancel, CancelExecutionRequest)
        assert cancel.execution_id == ex.id
        job = await _until(o, job_id, lambda j: j.state.is_terminal())
        assert job.state == JobStateType.FAILED
        [stored] = o.store.executions_of(job_id)
        assert stored.compute_details["ErrorCode"] == "ExecutionTimeout"
        [failed] = [h for h in o.store.history_of(job_id) if h.job_state_new == JobStateType.FAILED]
        assert failed.event.details["ErrorCode"] == "ExecutionTimeout"


async def test_a_job_past_its_total_timeout_fails_and_its_execution_is_cancelled(
    orch: tuple[Orchestrator, RecordingCompute],
) -> None:
    o, compute = orch
    await _view(o).join(_node("slow"))
    job_id = (await o.submit_job(_job(task={"Timeouts": {"TotalTimeout": 1}}))).job_id
    ex = await _start(o, compute, "slow")
    who, cancel = await compute.next("cancel")
    assert who == "slow" and isinstance(cancel, CancelExecutionRequest)
    assert cancel.execution_id == ex.id
    job = await _until(o, job_id, lambda j: j.state.is_terminal())
    assert job.state == JobStateType.FAILED and "TotalTimeout of 1s" in job.state_message


async def test_a_failed_execution_is_retried_after_its_backoff(tmp_path: Path) -> None:
    compute = RecordingCompute()
    async with _orchestrator(tmp_path, compute) as o:
        await _view(o).join(_node("a"))
        spec = _job(Reschedule={"Attempts": 2, "AttemptsPerNode": 2, "Delay": "300ms"})
        job_id = (await o.submit_job(spec)).job_id
        ex = await _start(o, compute, "a")
        failed_at = now_ns()
        await o.on_compute_failure(_failure(ex, "a"))
        retry = await _start(o, compute, "a")
        assert retry.id != ex.id and retry.create_time - failed_at >= 300_000_000
        await o.on_compute_failure(_failure(retry, "a"))
        job = await _until(o, job_id, lambda j: j.state.is_terminal())
        assert job.state == JobStateType.FAILED
        assert "2 failed executions of 2 allowed" in job.state_message


def _failure(ex: Execution, node: str) -> ComputeFailure:
    return ComputeFailure(
        ex.id, ex.job_id, node, Event(message="exit 1", details={"Retryable": "true"})
    )


async def test_housekeeping_picks_up_a_live_job_nothing_would_look_at(
    orch: tuple[Orchestrator, RecordingCompute],
) -> None:
    o, compute = orch
    await _view(o).join(_node("a"))
    # A job stored without its evaluation (as a crash between two writes could leave it).
    job = _job()
    normalise_job(job)
    validate_job(job)
    job.id, job.name, job.state, job.revision = "j-orphan", "j-orphan", JobStateType.PENDING, 1
    job.create_time = job.modify_time = now_ns()
    with o.store.transaction():
        o.store.create_job(job)
    who, ask = await compute.next("ask")
    assert who == "a" and isinstance(ask, AskForBidRequest) and ask.execution.job_id == "j-orphan"


def _evaluation_passes() -> float:
    return (
        REGISTRY.get_sample_value("bacalhau_scheduling_passes_total", {"path": "evaluation"}) or 0
    )
