"""A stored job that cannot be turned into a bprotocol message (a value the wire cannot carry,
accepted by an older version) fails with a clear message instead of staying pending forever.

The compute transport here encodes the job of every AskForBid with the gRPC edge's own
conversion, as the real client does before sending, and records what it could encode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    CancelExecutionRequest,
    Job,
    JobStateType,
    NodeInfo,
    NodeType,
    now_ns,
)
from bacalhau.orchestrator import JobStore, Orchestrator
from bacalhau.orchestrator._scheduler import SchedulerSettings
from bacalhau.transport._convert import job_to_proto
from tests.orchestrator.node_view import StaticNodeView, compute_node_info


class EncodingCompute:
    """Encodes each asked job as the gRPC client would; delivers nothing."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def register_node(self, node_id: str, address: str) -> None:
        pass

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> None:
        assert request.execution.job is not None
        job_to_proto(request.execution.job)
        self.asked.append(request.execution.job_id)

    async def bid_accepted(self, node_id: str, decision: BidDecision) -> None:
        pass

    async def bid_rejected(self, node_id: str, decision: BidDecision) -> None:
        pass

    async def cancel_execution(self, node_id: str, request: CancelExecutionRequest) -> None:
        pass


def _node(node_id: str) -> NodeInfo:
    info = compute_node_info(node_id)
    assert info.compute is not None
    info.compute.publishers = ["noop"]
    return info


def _stored_job(job_id: str, spoil: Callable[[Job], None]) -> Job:
    job = Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}, "Publisher": {"Type": "noop"}}],
        }
    )
    job.id, job.name, job.namespace = job_id, job_id, "default"
    job.state, job.revision = JobStateType.PENDING, 1
    job.create_time = job.modify_time = now_ns()
    spoil(job)
    return job


def _huge_priority(job: Job) -> None:
    job.priority = 10**29


def _huge_timeout(job: Job) -> None:
    job.task.timeouts.execution_timeout = 10**30


def _surrogate_env(job: Job) -> None:
    job.task.env["A"] = "\ud800"


@pytest.mark.parametrize("spoil", [_huge_priority, _huge_timeout, _surrogate_env])
async def test_an_unencodable_stored_job_fails_instead_of_hanging(
    tmp_path: Path, spoil: Callable[[Job], None]
) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with store.transaction():
        store.create_job(_stored_job("j-0ldbad01", spoil))
    store.close()
    compute = EncodingCompute()
    view = StaticNodeView()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        # Queue while no node is there, so the job is still live when the node joins.
        settings=SchedulerSettings(default_queue_timeout=60, queue_backoff=0.05),
    )
    async with orch:
        await view.join(_node("node-a"))
        for _ in range(100):
            job = await orch.get_job("j-0ldbad01")
            if job.state.is_terminal():
                break
            await asyncio.sleep(0.05)
        assert job.state == JobStateType.FAILED, job.state_message
        assert "cannot be sent to compute nodes" in job.state_message
        [ex] = await orch.list_executions(job.id)
        assert ex.compute_state.is_terminal()
        assert ex.compute_details.get("Retryable") == "false"
        # The node is still usable: a valid job is asked for at once.
        valid = _stored_job("", lambda j: None)
        valid.id = ""
        job_id = (await orch.submit_job(valid)).job_id
        for _ in range(100):
            if job_id in compute.asked:
                break
            await asyncio.sleep(0.02)
        assert job_id in compute.asked
