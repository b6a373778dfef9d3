"""The orchestrator's bprotocol callbacks, driven through a real Orchestrator whose compute
transport is an in-test implementation that records what it is asked to send."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bacalhau.errors import PermissionDenied
from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    ComputeNodeInfo,
    Event,
    Execution,
    Job,
    JobStateType,
    JoinRequest,
    NodeInfo,
    NodeState,
    NodeType,
    Resources,
    RunCommandResult,
    RunResult,
    SpecConfig,
)
from bacalhau.orchestrator import Orchestrator


@dataclass
class RecordingCompute:
    """Delivers nothing; remembers every message, so tests can answer as a node would."""

    sent: list[tuple[str, str, object]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

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


def _compute_node(node_id: str) -> JoinRequest:
    cap = Resources(cpu=4, memory=8 * 10**9, disk=10**11)
    return JoinRequest(
        NodeInfo(
            node_id=node_id,
            node_type=NodeType.COMPUTE,
            compute=ComputeNodeInfo(
                execution_engines=["noop"],
                publishers=["local", "noop"],
                max_capacity=cap,
                available_capacity=cap,
                max_job_requirements=cap,
            ),
            grpc_address="127.0.0.1:1",
        )
    )


def _job() -> Job:
    return Job.from_dict({"Type": "batch", "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]})


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Orchestrator, RecordingCompute]]:
    compute = RecordingCompute()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
    )
    async with orch:
        await orch.join(_compute_node("node-a"))
        yield orch, compute


async def _wait_terminal(orch: Orchestrator, job_id: str) -> Job:
    for _ in range(100):
        job = await orch.get_job(job_id)
        if job.state.is_terminal():
            return job
        await orch.wait_for_change(job_id, after_seq=orch.store.last_seq(job_id), timeout=0.1)
    raise AssertionError("job did not finish")


async def test_full_round_and_late_duplicates_are_ignored(
    setup: tuple[Orchestrator, RecordingCompute],
) -> None:
    orch, compute = setup
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
    setup: tuple[Orchestrator, RecordingCompute],
) -> None:
    orch, compute = setup
    job_id = (await orch.submit_job(_job())).job_id
    _, ask = await compute.next("ask")
    assert isinstance(ask, AskForBidRequest)
    with pytest.raises(PermissionDenied):
        await orch.on_bid_complete(BidResult(ask.execution.id, job_id, "node-b", accepted=True))


async def test_failure_report_fails_the_execution_and_the_job_says_why(
    setup: tuple[Orchestrator, RecordingCompute],
) -> None:
    orch, compute = setup
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
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        approval_hooks=[DenyAll()],
    )
    async with orch:
        await orch.join(_compute_node("node-a"))
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
    setup: tuple[Orchestrator, RecordingCompute],
) -> None:
    orch, compute = setup
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
