"""The orchestrator's bprotocol callbacks, driven through a real Orchestrator whose compute
transport is an in-test implementation that records what it is asked to send."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bacalhau.errors import NodeLost, PermissionDenied
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    Event,
    Execution,
    ExecutionReport,
    ExecutionStateType,
    Job,
    JobStateType,
    NodeInfo,
    NodeState,
    NodeType,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.orchestrator import Orchestrator, SchedulerSettings
from tests.orchestrator.node_view import StaticNodeView, compute_node_info


@dataclass
class RecordingCompute:
    """Delivers nothing; remembers every message, so tests can answer as a node would."""

    sent: list[tuple[str, str, object]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: What ``withdraw_queued`` answers, by execution ID (None, the default: withdrawn).
    withdraw_answers: dict[str, str | None] = field(default_factory=dict)

    def register_node(self, node_id: str, address: str) -> None:
        pass

    def _record(self, kind: str, node_id: str, msg: object) -> None:
        self.sent.append((kind, node_id, msg))
        self.arrived.set()

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> None:
        self._record("ask", node_id, request)

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None:
        self._record("accept", node_id, decision)

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None:
        self._record("reject", node_id, decision)

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None:
        self._record("cancel", node_id, request)

    async def withdraw_queued(self, node_id: str, request: CancelExecutionRequest) -> str | None:
        self._record("withdraw", node_id, request)
        return self.withdraw_answers.get(request.execution_id)

    async def next(self, kind: str) -> tuple[str, object]:
        for _ in range(200):
            for i, (k, node, msg) in enumerate(self.sent):
                if k == kind:
                    del self.sent[i]
                    return node, msg
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.05)
        raise AssertionError(f"no {kind} message was sent")


class DenyAll:
    name = "deny-all"

    async def approve(self, job: Job, execution: Execution, node: NodeState) -> tuple[bool, str]:
        return False, "this operator accepts no bids today"


def _compute_node(node_id: str) -> NodeInfo:
    return compute_node_info(node_id)


def _job() -> Job:
    return Job.from_dict({"Type": "batch", "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]})


@dataclass
class Setup:
    orch: Orchestrator
    compute: RecordingCompute
    view: StaticNodeView


@contextlib.asynccontextmanager
async def requester_with_node_a(
    data_dir: Path, settings: SchedulerSettings | None = None
) -> AsyncIterator[Setup]:
    """A requester storing in ``data_dir``, whose cluster view holds compute node-a;
    ``settings`` default to two rounds, step by step (the one-round path:
    test_fast_path.py)."""
    compute = RecordingCompute()
    view = StaticNodeView()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=data_dir,
        compute=compute,
        node_view=view,
        settings=settings or SchedulerSettings(pre_approve=False),
    )
    async with orch:
        await view.join(_compute_node("node-a"))
        yield Setup(orch, compute, view)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with requester_with_node_a(tmp_path) as ready:
        yield ready


async def _wait_terminal(orch: Orchestrator, job_id: str) -> Job:
    for _ in range(100):
        job = await orch.get_job(job_id)
        if job.state.is_terminal():
            return job
        await orch.wait_for_change(job_id, after_seq=orch.store.last_seq(job_id), timeout=0.1)
    raise AssertionError("job did not finish")


async def test_full_round_and_late_duplicates_are_ignored(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id = (await orch.submit_job(_job())).job_id
    node, ask = await compute.next("ask")
    assert node == "node-a" and isinstance(ask, AskForBidRequest) and ask.wait_for_approval
    ex = ask.execution
    await orch.on_bid_complete(BidResult(ex.id, job_id, "node-a", accepted=True))
    await compute.next("accept")
    result = RunResult(
        ex.id, job_id, "node-a", SpecConfig(type="noop"), RunCommandResult(stdout="ok", exit_code=3)
    )
    await orch.on_run_complete(result)
    job = await _wait_terminal(orch, job_id)
    assert job.state == JobStateType.COMPLETED  # a non-zero exit still completes
    [done] = await orch.list_executions(job_id)
    assert done.run_output is not None and done.run_output.exit_code == 3
    # The node retries a callback it thinks was lost: nothing changes, nothing breaks.
    await orch.on_run_complete(result)
    await orch.on_bid_complete(BidResult(ex.id, job_id, "node-a", accepted=True))
    assert (await orch.get_job(job_id)).revision == job.revision


async def test_a_node_cannot_report_on_another_nodes_execution(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id = (await orch.submit_job(_job())).job_id
    _, ask = await compute.next("ask")
    assert isinstance(ask, AskForBidRequest)
    with pytest.raises(PermissionDenied):
        await orch.on_bid_complete(BidResult(ask.execution.id, job_id, "node-b", accepted=True))


async def test_failure_report_fails_the_execution_and_the_job_says_why(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id = (await orch.submit_job(_job())).job_id
    _, ask = await compute.next("ask")
    assert isinstance(ask, AskForBidRequest)
    ex = ask.execution
    await orch.on_bid_complete(BidResult(ex.id, job_id, "node-a", accepted=True))
    await compute.next("accept")
    await orch.on_compute_failure(
        ComputeFailure(
            ex.id,
            job_id,
            "node-a",
            Event(message="image x is not present", details={"Retryable": "false"}),
        )
    )
    job = await _wait_terminal(orch, job_id)
    assert job.state == JobStateType.FAILED
    assert "image x is not present" in job.state_message


async def test_approval_hook_rejects_the_bid(tmp_path: Path) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        approval_hooks=[DenyAll()],
    )
    async with orch:
        await view.join(_compute_node("node-a"))
        job_id = (await orch.submit_job(_job())).job_id
        _, ask = await compute.next("ask")
        assert isinstance(ask, AskForBidRequest)
        await orch.on_bid_complete(BidResult(ask.execution.id, job_id, "node-a", accepted=True))
        node, decision = await compute.next("reject")
        assert node == "node-a" and isinstance(decision, BidDecision)
        assert "deny-all" in decision.justification
        job = await _wait_terminal(orch, job_id)
        assert job.state == JobStateType.FAILED
        assert "accepts no bids today" in job.state_message


async def test_stop_cancels_the_running_execution(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id = (await orch.submit_job(_job())).job_id
    _, ask = await compute.next("ask")
    assert isinstance(ask, AskForBidRequest)
    await orch.on_bid_complete(BidResult(ask.execution.id, job_id, "node-a", accepted=True))
    await compute.next("accept")
    assert await orch.stop_job(job_id, "no longer needed")
    node, cancel = await compute.next("cancel")
    assert node == "node-a" and isinstance(cancel, CancelExecutionRequest)
    assert cancel.execution_id == ask.execution.id
    assert (await orch.get_job(job_id)).state == JobStateType.STOPPED


# -- node loss, late results, flapping, re-join reconciliation --------------------------------


async def _running_on(
    orch: Orchestrator, compute: RecordingCompute, node_id: str
) -> tuple[str, Execution]:
    """A job whose bid ``node_id`` won and that now runs there."""
    job_id = (await orch.submit_job(_job())).job_id
    node, ask = await compute.next("ask")
    assert node == node_id and isinstance(ask, AskForBidRequest)
    await orch.on_bid_complete(BidResult(ask.execution.id, job_id, node_id, accepted=True))
    await compute.next("accept")
    return job_id, ask.execution


async def _lose_and_replace(
    orch: Orchestrator, compute: RecordingCompute, job_id: str, lost: str, view: StaticNodeView
) -> Execution:
    """Gossip declares ``lost`` dead; returns the replacement, asked of another node."""
    await view.kill(lost, silent_for=12.5)
    node, ask = await compute.next("ask")
    assert isinstance(ask, AskForBidRequest) and node != lost
    return ask.execution


def _result(ex: Execution, job_id: str, node_id: str, stdout: str) -> RunResult:
    return RunResult(
        ex.id, job_id, node_id, SpecConfig(type="noop"), RunCommandResult(stdout=stdout)
    )


async def _history(orch: Orchestrator, job_id: str, execution_id: str) -> list[Event]:
    return [h.event for h in await orch.job_history(job_id, execution_id=execution_id)]


async def test_lost_node_fails_its_execution_as_node_lost_and_a_replacement_runs(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id, first = await _running_on(orch, compute, "node-a")
    await setup.view.join(_compute_node("node-b"))
    second = await _lose_and_replace(orch, compute, job_id, "node-a", setup.view)
    assert second.node_id == "node-b"
    lost = orch.store.get_execution(first.id)
    assert lost.compute_state == ExecutionStateType.FAILED
    assert lost.compute_details["ErrorCode"] == NodeLost.code
    [event] = [e for e in await _history(orch, job_id, first.id) if e.details.get("ErrorCode")]
    assert event.details["ErrorCode"] == NodeLost.code
    assert "node node-a disconnected (silent for" in event.message
    await orch.on_bid_complete(BidResult(second.id, job_id, "node-b", accepted=True))
    await compute.next("accept")
    await orch.on_run_complete(_result(second, job_id, "node-b", "from b"))
    assert (await _wait_terminal(orch, job_id)).state == JobStateType.COMPLETED


async def test_late_result_of_a_lost_execution_is_kept_while_the_job_still_needs_it(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id, first = await _running_on(orch, compute, "node-a")
    await setup.view.join(_compute_node("node-b"))
    second = await _lose_and_replace(orch, compute, job_id, "node-a", setup.view)
    await orch.on_bid_complete(BidResult(second.id, job_id, "node-b", accepted=True))
    await compute.next("accept")

    # The "dead" node comes back with a result before the replacement finished: the node
    # did the work, so its result is kept and the replacement is stopped as surplus.
    late = _result(first, job_id, "node-a", "from a")
    await orch.on_run_complete(late)
    job = await _wait_terminal(orch, job_id)
    assert job.state == JobStateType.COMPLETED
    kept = orch.store.get_execution(first.id)
    assert kept.compute_state == ExecutionStateType.COMPLETED
    assert kept.run_output is not None and kept.run_output.stdout == "from a"
    assert "ErrorCode" not in kept.compute_details and kept.compute_message == ""
    node, cancel = await compute.next("cancel")
    assert node == "node-a", "first: the cancel sent when node-a was declared lost"
    node, cancel = await compute.next("cancel")
    assert node == "node-b" and isinstance(cancel, CancelExecutionRequest)
    assert cancel.execution_id == second.id
    assert orch.store.get_execution(second.id).compute_state == ExecutionStateType.CANCELLED
    [told] = [e for e in await _history(orch, job_id, first.id) if e.details.get("LateResultKept")]
    assert "node node-a had been declared lost; its result is kept" in told.message

    # Its outbox retried, then a failure crossed the result: nothing changes any more.
    await orch.on_run_complete(late)
    await orch.on_compute_failure(
        ComputeFailure(first.id, job_id, "node-a", Event(message="also failed"))
    )
    await orch.on_run_complete(_result(second, job_id, "node-b", "from b"))
    assert (await orch.get_job(job_id)).revision == job.revision
    assert orch.store.get_execution(first.id).compute_state == ExecutionStateType.COMPLETED
    assert len(await orch.job_results(job_id)) == 1
    completions = [
        h
        for h in await orch.job_history(job_id, event_type="job")
        if h.job_state_new == JobStateType.COMPLETED
    ]
    assert len(completions) == 1
    assert not [e for e in await _history(orch, job_id, first.id) if e.details.get("LateReport")][
        1:
    ], "the kept result is told once"


async def test_late_result_of_an_execution_failed_otherwise_is_not_kept(setup: Setup) -> None:
    orch, compute = setup.orch, setup.compute
    job_id, first = await _running_on(orch, compute, "node-a")
    await orch.on_compute_failure(
        ComputeFailure(first.id, job_id, "node-a", Event(message="disk full"))
    )
    # A completion crossing the node's own failure report: the failure stands.
    await orch.on_run_complete(_result(first, job_id, "node-a", "from a"))
    assert orch.store.get_execution(first.id).compute_state == ExecutionStateType.FAILED
    told = [e for e in await _history(orch, job_id, first.id) if e.details.get("LateReport")]
    assert len(told) == 1 and "Late report ignored" in told[0].message


async def _asked(compute: RecordingCompute, count: int) -> dict[str, Execution]:
    """The next ``count`` asks, by node."""
    asks: dict[str, Execution] = {}
    for _ in range(count):
        node, ask = await compute.next("ask")
        assert isinstance(ask, AskForBidRequest)
        asks[node] = ask.execution
    return asks


async def test_late_result_of_a_partition_completed_elsewhere_is_not_kept(setup: Setup) -> None:
    orch, compute = setup.orch, setup.compute
    await setup.view.join(_compute_node("node-b"))
    job = _job()
    job.count = 2
    job_id = (await orch.submit_job(job)).job_id
    asks = await _asked(compute, 2)
    for node, ex in asks.items():
        await orch.on_bid_complete(BidResult(ex.id, job_id, node, accepted=True))
        await compute.next("accept")
    lost, own = asks["node-a"], asks["node-b"]
    await setup.view.join(_compute_node("node-c"))
    replacement = await _lose_and_replace(orch, compute, job_id, "node-a", setup.view)
    assert replacement.partition_index == lost.partition_index
    assert replacement.node_id == "node-c"
    await orch.on_bid_complete(BidResult(replacement.id, job_id, "node-c", accepted=True))
    await compute.next("accept")
    await orch.on_run_complete(_result(replacement, job_id, "node-c", "replacement"))

    # The job still runs (node-b's own partition), but this partition is done.
    await orch.on_run_complete(_result(lost, job_id, "node-a", "late"))
    assert orch.store.get_execution(lost.id).compute_state == ExecutionStateType.FAILED
    [told] = [e for e in await _history(orch, job_id, lost.id) if e.details.get("LateReport")]
    assert "Late report ignored" in told.message
    assert not (await orch.get_job(job_id)).state.is_terminal()
    await orch.on_run_complete(_result(own, job_id, "node-b", "own"))
    assert (await _wait_terminal(orch, job_id)).state == JobStateType.COMPLETED
    outputs = sorted(
        e.run_output.stdout
        for e in await orch.list_executions(job_id)
        if e.compute_state == ExecutionStateType.COMPLETED and e.run_output is not None
    )
    assert outputs == ["own", "replacement"]


async def test_late_result_of_an_ops_run_on_a_lost_node_completes_the_job(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    await setup.view.join(_compute_node("node-b"))
    job = _job()
    job.type = "ops"
    job_id = (await orch.submit_job(job)).job_id
    asks = await _asked(compute, 2)
    for node, ex in asks.items():
        await orch.on_bid_complete(BidResult(ex.id, job_id, node, accepted=True))
        await compute.next("accept")
    await setup.view.kill("node-a", silent_for=12.5)
    await compute.next("cancel")  # node-a's run, failed as lost
    assert orch.store.get_execution(asks["node-a"].id).compute_state == (ExecutionStateType.FAILED)
    await orch.on_run_complete(_result(asks["node-a"], job_id, "node-a", "a"))
    await orch.on_run_complete(_result(asks["node-b"], job_id, "node-b", "b"))
    assert (await _wait_terminal(orch, job_id)).state == JobStateType.COMPLETED
    assert len(await orch.job_results(job_id)) == 2


async def test_flapping_node_is_stopped_from_running_a_replaced_execution(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id, first = await _running_on(orch, compute, "node-a")
    await setup.view.join(_compute_node("node-b"))
    second = await _lose_and_replace(orch, compute, job_id, "node-a", setup.view)

    # Back again (it refuted its death with a newer record): it reports what it holds, and
    # the replaced execution it still runs is cancelled on it.
    await setup.view.come_back("node-a")
    await orch.report_executions(ExecutionReport("node-a", [first.id]))
    node, cancel = await compute.next("cancel")
    assert node == "node-a" and isinstance(cancel, CancelExecutionRequest)
    assert cancel.execution_id == first.id

    # Dead once more; its cancellation, crossing the cancel, is told, and nothing new is
    # placed: the replacement runs on and completes the job, once.
    await setup.view.kill("node-a", silent_for=3.0)
    await orch.on_compute_failure(
        ComputeFailure(first.id, job_id, "node-a", Event(message="cancelled"))
    )
    await orch.on_bid_complete(BidResult(second.id, job_id, "node-b", accepted=True))
    await compute.next("accept")
    await orch.on_run_complete(_result(second, job_id, "node-b", "from b"))
    assert (await _wait_terminal(orch, job_id)).state == JobStateType.COMPLETED
    await orch.on_run_complete(_result(first, job_id, "node-a", "from a"))
    executions = await orch.list_executions(job_id)
    assert sorted(e.id for e in executions) == sorted([first.id, second.id])
    assert [e.id for e in executions if e.compute_state == ExecutionStateType.COMPLETED] == [
        second.id
    ]
    assert not [s for s in compute.sent if s[0] == "ask"]


async def test_report_without_an_execution_has_it_failed_and_replaced(
    tmp_path: Path,
) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        report_in_flight=0.1,  # what may still be on its way to the node
        settings=SchedulerSettings(pre_approve=False),
    )
    async with orch:
        await view.join(_compute_node("node-a"))
        _, first = await _running_on(orch, compute, "node-a")
        await asyncio.sleep(0.2)
        # Still held: nothing changes.
        await orch.report_executions(ExecutionReport("node-a", [first.id]))
        assert orch.store.get_execution(first.id).compute_state == ExecutionStateType.BID_ACCEPTED
        # Restarted without it (or never got it): failed as lost and placed again.
        await orch.report_executions(ExecutionReport("node-a", []))
        lost = orch.store.get_execution(first.id)
        assert lost.compute_state == ExecutionStateType.FAILED
        assert lost.compute_details["ErrorCode"] == NodeLost.code
        assert f"reported its executions without {first.id}" in lost.compute_message
        node, ask = await compute.next("ask")
        assert node == "node-a" and isinstance(ask, AskForBidRequest)
        assert ask.execution.id != first.id


async def test_late_result_after_the_replacement_completed_changes_nothing_but_the_history(
    setup: Setup,
) -> None:
    orch, compute = setup.orch, setup.compute
    job_id, first = await _running_on(orch, compute, "node-a")
    await setup.view.join(_compute_node("node-b"))
    second = await _lose_and_replace(orch, compute, job_id, "node-a", setup.view)
    await orch.on_bid_complete(BidResult(second.id, job_id, "node-b", accepted=True))
    await compute.next("accept")
    await orch.on_run_complete(_result(second, job_id, "node-b", "from b"))
    job = await _wait_terminal(orch, job_id)
    assert job.state == JobStateType.COMPLETED

    await orch.on_run_complete(_result(first, job_id, "node-a", "from a"))
    assert (await orch.get_job(job_id)).revision == job.revision
    assert await orch.job_results(job_id) == [orch.store.get_execution(second.id).published_result]
    told = [
        e for e in await _history(orch, job_id, first.id) if e.details.get("LateReport") == "true"
    ]
    assert len(told) == 1 and "already failed" in told[0].message
