from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bacalhau.compute import (
    RESTART_MESSAGE,
    Bidder,
    CapacityTracker,
    ComputeEndpoint,
    ExecutionPipeline,
    ExecutionStore,
    RequesterTrust,
    default_strategies,
)
from bacalhau.errors import ExecutionNotFound, InvalidRequest, PermissionDenied, Unavailable
from bacalhau.executor import STDERR_FILE, STDOUT_FILE, Executor
from bacalhau.executor.noop import NoopExecutor
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Execution,
    LocalExecutionState,
    LogChunk,
    LogRequest,
    Resources,
    RunResult,
)
from bacalhau.publisher import NoopPublisher
from tests.compute.jobs import make_execution, noop_execution
from tests.compute.recording_callbacks import RecordingCallbacks
from tests.compute.shell_executor import ShellExecutor
from tests.compute.waiting import eventually

L = LocalExecutionState
REQUESTER = "requester-1"
#: Trusted too, but not the requester of REQUESTER's executions.
OTHER_REQUESTER = "requester-2"
ROOMY = Resources(cpu=8, memory=16 * 2**30, disk=10**11)


@dataclass
class Node:
    endpoint: ComputeEndpoint
    store: ExecutionStore
    callbacks: RecordingCallbacks
    shell: ShellExecutor
    results_root: Path

    async def ask(self, execution: Execution, *, wait: bool = True) -> None:
        request = AskForBidRequest(execution=execution, wait_for_approval=wait)
        await self.endpoint.ask_for_bid(REQUESTER, request)

    def state(self, execution_id: str) -> L | None:
        record = self.store.find(execution_id)
        return record.state if record is not None else None


NodeFactory = Callable[..., AbstractAsyncContextManager[Node]]


@pytest.fixture
def compute_node(tmp_path: Path) -> NodeFactory:
    @asynccontextmanager
    async def factory(
        *,
        capacity: Resources = ROOMY,
        fail_first: int = 0,
        db: Path | None = None,
        callbacks: RecordingCallbacks | None = None,
        shell: ShellExecutor | None = None,
    ) -> AsyncIterator[Node]:
        async with AsyncExitStack() as stack:
            store = stack.enter_context(ExecutionStore(db or tmp_path / "compute.db"))
            shell = shell or ShellExecutor()
            executors: dict[str, Executor] = {"noop": NoopExecutor(), "shell": shell}
            publishers = {"noop": NoopPublisher()}
            tracker = CapacityTracker(capacity)
            bidder = Bidder(
                node_id="compute-node",
                strategies=default_strategies(
                    executors=executors, publishers=publishers, max_job_requirements=capacity
                ),
            )
            results_root = tmp_path / "executions"
            pipeline = ExecutionPipeline(
                node_id="compute-node",
                store=store,
                executors=executors,
                publishers=publishers,
                results_root=results_root,
            )
            recorder = callbacks or RecordingCallbacks(fail_first=fail_first)
            endpoint = ComputeEndpoint(
                node_id="compute-node",
                store=store,
                bidder=bidder,
                pipeline=pipeline,
                callbacks=recorder,
                capacity=tracker,
                trust=RequesterTrust([REQUESTER, OTHER_REQUESTER]),
                callback_initial_backoff=0.01,
                callback_max_backoff=0.05,
            )
            await stack.enter_async_context(endpoint)
            yield Node(endpoint, store, recorder, shell, results_root)

    return factory


async def test_wait_for_approval_flow(compute_node: NodeFactory) -> None:
    async with compute_node() as node:
        execution = noop_execution(Stdout="approved run")
        await node.ask(execution, wait=True)
        (bid,) = await node.callbacks.wait_for(execution.id, BidResult)
        assert isinstance(bid, BidResult)
        assert bid.accepted and bid.node_id == "compute-node" and bid.job_id == execution.job_id
        assert bid.event.topic == "Bidding"
        assert node.state(execution.id) is L.CREATED  # waits for the requester's decision

        await node.endpoint.bid_accepted(REQUESTER, BidDecision(execution.id, accepted=True))
        (result,) = await node.callbacks.wait_for(execution.id, RunResult)
        assert isinstance(result, RunResult)
        assert result.run_output.stdout == "approved run"
        assert node.state(execution.id) is L.COMPLETED
        # A repeated BidAccepted changes nothing.
        await node.endpoint.bid_accepted(REQUESTER, BidDecision(execution.id, accepted=True))
        assert node.state(execution.id) is L.COMPLETED


async def test_pre_approved_flow(compute_node: NodeFactory) -> None:
    async with compute_node() as node:
        execution = noop_execution(Stdout="straight away", ExitCode=3)
        await node.ask(execution, wait=False)
        (result,) = await node.callbacks.wait_for(execution.id, RunResult)
        assert isinstance(result, RunResult) and result.run_output.exit_code == 3
        # One round: the bid is reported, and the run starts without waiting for BidAccepted.
        bid, _ = node.callbacks.messages(execution.id)
        assert isinstance(bid, BidResult) and bid.accepted and bid.event.topic == "Bidding"
        assert node.state(execution.id) is L.COMPLETED


async def test_a_cancel_that_arrives_while_bidding_keeps_the_execution_from_running(
    compute_node: NodeFactory,
) -> None:
    async with compute_node() as node:
        execution = noop_execution(Stdout="must not run")
        await node.ask(execution, wait=False)
        # The bid is decided in a task of its own: this cancel overtakes it.
        assert node.state(execution.id) is None
        await node.endpoint.cancel_execution(
            REQUESTER, CancelExecutionRequest(execution.id, "job stopped")
        )
        await eventually(lambda: node.state(execution.id) is L.CANCELLED)
        await node.ask(execution, wait=False)  # a repeated ask stays a no-op
        await asyncio.sleep(0.2)
        assert node.state(execution.id) is L.CANCELLED
        assert node.callbacks.messages(execution.id) == []


async def test_rejection_while_waiting_for_approval(compute_node: NodeFactory) -> None:
    async with compute_node() as node:
        execution = make_execution(engine="docker")
        await node.ask(execution, wait=True)
        (bid,) = await node.callbacks.wait_for(execution.id, BidResult)
        assert isinstance(bid, BidResult) and not bid.accepted
        assert bid.event.message == "this node does not have the 'docker' engine installed"
        assert node.state(execution.id) is L.BID_REJECTED


async def test_rejection_of_a_pre_approved_execution(compute_node: NodeFactory) -> None:
    async with compute_node(capacity=Resources(cpu=1, memory=2**30)) as node:
        execution = make_execution("echo hi", cpu="2")
        await node.ask(execution, wait=False)
        # A declined bid, as in two rounds: not a failed execution.
        (bid,) = await node.callbacks.wait_for(execution.id, BidResult)
        assert isinstance(bid, BidResult) and not bid.accepted
        assert bid.event.message.startswith("insufficient resources - ")
        assert node.callbacks.messages(execution.id) == [bid]
        assert node.state(execution.id) is L.BID_REJECTED
        assert node.shell.started == []


async def test_bid_rejected_by_the_requester(compute_node: NodeFactory) -> None:
    async with compute_node() as node:
        execution = make_execution("echo never")
        await node.ask(execution)
        await node.callbacks.wait_for(execution.id, BidResult)
        await node.endpoint.bid_rejected(REQUESTER, BidDecision(execution.id, False, "too slow"))
        record = node.store.get(execution.id)
        assert (record.state, record.message) == (L.BID_REJECTED, "too slow")
        await node.endpoint.bid_rejected(REQUESTER, BidDecision(execution.id, False))  # again
        assert node.shell.started == []


async def test_duplicate_ask_for_bid_is_idempotent(compute_node: NodeFactory) -> None:
    async with compute_node() as node:
        execution = noop_execution()
        await node.ask(execution)
        await node.ask(execution)  # while the first bid is still in flight
        await node.callbacks.wait_for(execution.id, BidResult)
        await node.ask(execution)  # after it was recorded
        await node.endpoint.outbox.flush(5)
        assert len(node.callbacks.messages(execution.id)) == 1
        assert len(node.store.executions()) == 1


async def test_cancel_while_running_stops_the_workload(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    async with compute_node() as node:
        execution = make_execution(f"echo printed-before-stop; echo $$ > {pid_file}; exec sleep 60")
        await node.ask(execution, wait=False)
        await eventually(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        assert node.state(execution.id) is L.RUNNING
        pid = int(pid_file.read_text())

        await node.endpoint.cancel_execution(
            REQUESTER, CancelExecutionRequest(execution.id, "user stopped the job")
        )
        record = node.store.get(execution.id)
        assert (record.state, record.message) == (L.CANCELLED, "user stopped the job")
        await eventually(lambda: node.endpoint.running_count == 0)
        assert node.shell.cancelled == [execution.id]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        # Its results are gone, but what it printed stays for `job logs`.
        left = {p.name for p in (node.results_root / execution.id).iterdir()}
        assert left <= {STDOUT_FILE, STDERR_FILE} and STDOUT_FILE in left
        chunks = node.endpoint.stream_logs(REQUESTER, LogRequest(execution_id=execution.id))
        printed = b"".join([c.data async for c in chunks])
        assert printed == b"printed-before-stop\n"
        await node.endpoint.outbox.flush(5)
        # Only the bid: the requester asked for the stop, so no callback reports it.
        assert [type(m) for m in node.callbacks.messages(execution.id)] == [BidResult]
        assert node.state(execution.id) is L.CANCELLED
        # Capacity is back: the next job runs.
        follow_up = noop_execution(Stdout="next")
        await node.ask(follow_up, wait=False)
        await node.callbacks.wait_for(follow_up.id, RunResult)
        # Cancelling again, or something unknown, is harmless.
        await node.endpoint.cancel_execution(REQUESTER, CancelExecutionRequest(execution.id))
        await node.endpoint.cancel_execution(REQUESTER, CancelExecutionRequest("e-unknown"))


class _DrainingShell(ShellExecutor):
    """Stops a workload as Docker does: its last output reaches the results files a moment
    after the stop was asked (the attach stream drains), then the workload is gone."""

    def __init__(self, results_root: Path) -> None:
        super().__init__()
        self._root = results_root

    async def cancel(self, execution_id: str) -> None:
        await asyncio.sleep(0.3)
        with (self._root / execution_id / STDOUT_FILE).open("ab") as out:
            out.write(b"last words\n")
        await super().cancel(execution_id)


async def test_a_follower_of_a_cancelled_execution_gets_its_last_output(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    """The output of a cancelled execution ends once its workload is stopped, not when the
    cancel is recorded: what the engine writes while stopping it reaches a follower."""
    shell = _DrainingShell(tmp_path / "executions")
    async with compute_node(shell=shell) as node:
        execution = make_execution("echo started; exec sleep 60")
        await node.ask(execution, wait=False)
        results = node.results_root / execution.id / STDOUT_FILE
        await eventually(lambda: results.exists() and results.read_bytes() == b"started\n")
        request = LogRequest(execution_id=execution.id, follow=True)
        follower = node.endpoint.stream_logs(REQUESTER, request)
        first = await anext(aiter(follower))
        assert first.data == b"started\n"

        await node.endpoint.cancel_execution(REQUESTER, CancelExecutionRequest(execution.id))
        rest = await asyncio.wait_for(_read_all(follower), 10)

        assert rest == b"last words\n"
        assert node.state(execution.id) is L.CANCELLED


async def _read_all(chunks: AsyncIterator[LogChunk]) -> bytes:
    return b"".join([c.data async for c in chunks])


async def test_callbacks_are_retried_until_delivered(compute_node: NodeFactory) -> None:
    async with compute_node(fail_first=4) as node:
        execution = noop_execution(Stdout="eventually")
        await node.ask(execution, wait=False)
        (result,) = await node.callbacks.wait_for(execution.id, RunResult)
        assert isinstance(result, RunResult) and result.run_output.stdout == "eventually"
        assert node.callbacks.failures == 4
        assert [type(m) for m in node.callbacks.messages(execution.id)] == [BidResult, RunResult]
        assert node.store.pending_callbacks(REQUESTER) == []


async def test_queue_runs_by_priority_when_capacity_frees(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with compute_node(capacity=Resources(cpu=1, memory=2**30)) as node:
        blocker = make_execution(f"while [ ! -e {gate} ]; do sleep 0.01; done", cpu="1")
        await node.ask(blocker, wait=False)
        await eventually(lambda: node.shell.started == [blocker.id])

        low = make_execution("echo low", cpu="1", priority=1)
        high = make_execution("echo high", cpu="1", priority=9)
        mid = make_execution("echo mid", cpu="1", priority=5)
        later_high = make_execution("echo high too", cpu="1", priority=9)
        for execution in (low, high, mid, later_high):
            await node.ask(execution, wait=False)
        await eventually(lambda: node.endpoint.queued_count == 4)
        assert node.endpoint.queued_count == 4
        info = await node.endpoint.node_info()
        assert (info.running_executions, info.enqueued_executions) == (1, 4)
        assert info.queue_capacity.cpu == 4
        assert info.available_capacity.cpu == 0

        gate.touch()
        for execution in (low, high, mid, later_high):
            await node.callbacks.wait_for(execution.id, RunResult)
        assert node.shell.started == [blocker.id, high.id, later_high.id, mid.id, low.id]


async def test_cancel_a_queued_execution(compute_node: NodeFactory, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with compute_node(capacity=Resources(cpu=1, memory=2**30)) as node:
        blocker = make_execution(f"while [ ! -e {gate} ]; do sleep 0.01; done", cpu="1")
        waiting = make_execution("echo never", cpu="1")
        await node.ask(blocker, wait=False)
        await node.ask(waiting, wait=False)
        await eventually(lambda: node.endpoint.queued_count == 1)
        await node.endpoint.cancel_execution(REQUESTER, CancelExecutionRequest(waiting.id))
        assert node.endpoint.queued_count == 0
        gate.touch()
        await node.callbacks.wait_for(blocker.id, RunResult)
        assert node.shell.started == [blocker.id]
        assert node.state(waiting.id) is L.CANCELLED


async def test_an_execution_queued_past_its_queue_timeout_fails_retryably(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    """Over-subscribed, the node queues what it has no room for yet: not past the job's
    QueueTimeout (counted from the job's creation), after which the requester may place it
    where there is room or fail the job on time."""
    gate = tmp_path / "gate"
    async with compute_node(capacity=Resources(cpu=1, memory=2**30)) as node:
        blocker = make_execution(f"while [ ! -e {gate} ]; do sleep 0.01; done", cpu="1")
        waiting = make_execution("echo never", cpu="1")
        assert waiting.job is not None
        waiting.job.task.timeouts.queue_timeout = 1
        waiting.job.create_time = time.time_ns()
        await node.ask(blocker, wait=False)
        await node.ask(waiting, wait=False)
        await eventually(lambda: node.endpoint.queued_count == 1)
        (failure,) = await node.callbacks.wait_for(waiting.id, ComputeFailure)
        assert isinstance(failure, ComputeFailure)
        assert node.endpoint.queued_count == 0
        assert node.state(waiting.id) is L.FAILED
        assert failure.event.details["ErrorCode"] == "QueueTimeout"
        assert failure.event.details["Retryable"] == "true"
        assert "QueueTimeout of 1s passed while the execution waited" in failure.event.message
        gate.touch()
        await node.callbacks.wait_for(blocker.id, RunResult)
        assert node.shell.started == [blocker.id]


async def test_restart_reports_interrupted_and_resumes_queued(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    db = tmp_path / "restart.db"
    interrupted = noop_execution()
    queued = noop_execution(Stdout="resumed")
    waiting = noop_execution()
    with ExecutionStore(db) as store:  # what a crashed node left behind
        record = store.create(interrupted, requester_id=REQUESTER, state=L.BID_ACCEPTED)
        store.transition(record, L.RUNNING)
        store.create(queued, requester_id=REQUESTER, state=L.BID_ACCEPTED)
        store.create(waiting, requester_id=REQUESTER)

    async with compute_node(db=db) as node:
        (failure,) = await node.callbacks.wait_for(interrupted.id, ComputeFailure)
        assert isinstance(failure, ComputeFailure)
        assert failure.event.message == RESTART_MESSAGE
        assert failure.event.details["Retryable"] == "true"
        (result,) = await node.callbacks.wait_for(queued.id, RunResult)
        assert isinstance(result, RunResult) and result.run_output.stdout == "resumed"
        assert node.state(interrupted.id) is L.FAILED
        # Still bidding: the requester can still accept it.
        assert node.state(waiting.id) is L.CREATED
        await node.endpoint.bid_accepted(REQUESTER, BidDecision(waiting.id, accepted=True))
        await node.callbacks.wait_for(waiting.id, RunResult)


async def test_shutdown_fails_running_work_and_reports_it(compute_node: NodeFactory) -> None:
    recorder = RecordingCallbacks()
    async with compute_node(callbacks=recorder) as node:
        execution = noop_execution(SleepSeconds=60)
        await node.ask(execution, wait=False)
        await eventually(lambda: node.state(execution.id) is L.RUNNING)
    # Closing the endpoint failed the execution and flushed the callback.
    _bid, failure = recorder.messages(execution.id)
    assert isinstance(failure, ComputeFailure)
    assert failure.event.message == "node shut down while the execution was running"
    assert failure.event.details["ErrorCode"] == "ExecutionInterrupted"
    # A shutdown the operator asked for: the requester counts no attempt of the job's.
    assert failure.event.details["NodeShutdown"] == "true"


async def test_callbacks_outlive_an_unreachable_requester(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    db = tmp_path / "outage.db"
    down = RecordingCallbacks(fail_first=10**9)
    execution = noop_execution(Stdout="kept for later")
    async with compute_node(db=db, callbacks=down) as node:
        await node.ask(execution, wait=False)
        await eventually(lambda: node.state(execution.id) is L.COMPLETED)
    assert down.received == []
    # The node restarts and the requester is back: the result is delivered.
    async with compute_node(db=db) as node:
        (result,) = await node.callbacks.wait_for(execution.id, RunResult)
        assert isinstance(result, RunResult) and result.run_output.stdout == "kept for later"


async def test_node_info(compute_node: NodeFactory) -> None:
    capacity = Resources(cpu=2, memory=2**30, disk=10**9)
    async with compute_node(capacity=capacity) as node:
        info = await node.endpoint.node_info()
        assert info.execution_engines == ["noop", "shell"]
        assert info.publishers == ["noop"]
        assert info.storage_sources == []
        assert info.max_capacity == capacity
        assert info.max_job_requirements == capacity
        assert info.available_capacity == capacity
        assert (info.running_executions, info.enqueued_executions) == (0, 0)
        node.shell.installed = False
        assert (await node.endpoint.node_info()).execution_engines == ["noop"]


async def test_bad_requests_are_refused(compute_node: NodeFactory) -> None:
    async with compute_node() as node:
        execution = make_execution()
        await node.ask(execution)
        await node.callbacks.wait_for(execution.id, BidResult)
        with pytest.raises(PermissionDenied):
            await node.endpoint.bid_accepted(OTHER_REQUESTER, BidDecision(execution.id, True))
        with pytest.raises(PermissionDenied):
            await node.endpoint.cancel_execution(
                OTHER_REQUESTER, CancelExecutionRequest(execution.id)
            )
        assert node.endpoint.trust.refused_total == 0  # refused as not the owner
        with pytest.raises(ExecutionNotFound):
            await node.endpoint.bid_accepted(REQUESTER, BidDecision("e-unknown", True))
        no_job = make_execution()
        no_job.job = None
        with pytest.raises(InvalidRequest):
            await node.ask(no_job)
        escaping = make_execution()
        escaping.id = "../../etc"
        with pytest.raises(InvalidRequest):
            await node.ask(escaping)
        endpoint = node.endpoint
    with pytest.raises(Unavailable):
        await endpoint.ask_for_bid(REQUESTER, AskForBidRequest(execution=make_execution()))


# -- only trusted requesters may command the node ---------------------------------------------

UNTRUSTED = "requester-never-joined"


@pytest.mark.parametrize(
    "command",
    ["ask_for_bid", "bid_accepted", "bid_rejected", "cancel_execution", "withdraw_queued"],
)
async def test_an_untrusted_requester_is_refused_and_nothing_is_acted_on(
    compute_node: NodeFactory, command: str
) -> None:
    async with compute_node() as node:
        # The trusted requester's work: one bid waiting for approval, one execution running.
        waiting = make_execution("echo waiting")
        await node.ask(waiting)
        await node.callbacks.wait_for(waiting.id, BidResult)
        running = noop_execution(SleepSeconds=60)
        await node.ask(running, wait=False)
        await eventually(lambda: node.state(running.id) is L.RUNNING)
        injected = make_execution("echo injected")
        calls = {
            "ask_for_bid": lambda: node.endpoint.ask_for_bid(
                UNTRUSTED, AskForBidRequest(execution=injected, wait_for_approval=False)
            ),
            "bid_accepted": lambda: node.endpoint.bid_accepted(
                UNTRUSTED, BidDecision(waiting.id, accepted=True)
            ),
            "bid_rejected": lambda: node.endpoint.bid_rejected(
                UNTRUSTED, BidDecision(waiting.id, accepted=False)
            ),
            "cancel_execution": lambda: node.endpoint.cancel_execution(
                UNTRUSTED, CancelExecutionRequest(running.id, "forged")
            ),
            "withdraw_queued": lambda: node.endpoint.withdraw_queued(
                UNTRUSTED, CancelExecutionRequest(running.id, "forged")
            ),
        }
        with pytest.raises(PermissionDenied, match="not a requester this compute node trusts"):
            await calls[command]()
        assert node.endpoint.trust.refused == {UNTRUSTED: 1}
        assert node.state(injected.id) is None
        assert (node.state(waiting.id), node.state(running.id)) == (L.CREATED, L.RUNNING)
        assert node.shell.started == []
        # The trusted requester still commands it.
        await node.endpoint.bid_accepted(REQUESTER, BidDecision(waiting.id, accepted=True))
        await node.callbacks.wait_for(waiting.id, RunResult)
        await node.endpoint.cancel_execution(REQUESTER, CancelExecutionRequest(running.id))
        assert node.state(running.id) is L.CANCELLED
