"""A compute node that does not obey this requester (it joined the cluster through another
node's seed, and trusts only the requesters it proved there) refuses every ask: the job is
turned down there at once, saying why, not retried as an unreachable node for a minute."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bacalhau.errors import PermissionDenied
from bacalhau.models import (
    AskAnswer,
    AskForBidRequest,
    ExecutionStateType,
    JobStateType,
    NodeInfo,
    NodeType,
)
from bacalhau.orchestrator import Orchestrator
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_job_names import UnansweredAsks, _job

REFUSAL = "node requester is not a requester this compute node trusts"


class UntrustingNode(UnansweredAsks):
    """Every ask is refused as a compute node that does not trust the sender refuses it."""

    async def ask_for_bid(self, node_id: str, request: AskForBidRequest) -> AskAnswer | None:
        self.sent.append(("AskForBid", request.execution.id))
        raise PermissionDenied(
            f"{node_id} refused the call: {REFUSAL}",
            hint="a compute node obeys the requesters that proved their identity at its seeds",
        )


@pytest.fixture
async def requester(tmp_path: Path) -> AsyncIterator[Orchestrator]:
    view = StaticNodeView()
    async with Orchestrator(
        node_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        data_dir=tmp_path / "requester",
        compute=UntrustingNode(),
        node_view=view,
    ) as orch:
        await view.join(compute_node_info("node-a"))
        yield orch


async def test_a_node_that_refuses_this_requester_turns_the_job_down_at_once(
    requester: Orchestrator,
) -> None:
    submitted = await requester.submit_job(_job())
    for _ in range(300):
        job = await requester.get_job(submitted.job_id)
        if job.state.is_terminal():
            break
        await asyncio.sleep(0.01)
    assert job.state == JobStateType.FAILED, job.state_message
    assert REFUSAL in job.state_message
    [ex] = await requester.list_executions(submitted.job_id)
    assert ex.compute_state == ExecutionStateType.ASK_FOR_BID_REJECTED
    assert ex.compute_message.startswith("node node-a refused this requester:")
