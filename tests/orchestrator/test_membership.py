"""Manual node approval: PENDING and REJECTED nodes are never asked to bid; approving a node
makes queued jobs placeable on it; rejecting one stops new placements, bids awaiting
approval included. Driven through a real Orchestrator whose compute transport records what
it is asked to send (tests/orchestrator/test_callbacks.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    Job,
    JobStateType,
    Membership,
    NodeInfo,
    NodeType,
)
from bacalhau.orchestrator import NodeManager, Orchestrator, SchedulerSettings
from tests.orchestrator.test_callbacks import RecordingCompute, _compute_node

REQUESTER = "requester"


def _queued_job() -> Job:
    # Waits in the queue (rather than failing) while no approved node fits.
    return Job.from_dict(
        {
            "Type": "batch",
            "Tasks": [
                {"Name": "main", "Engine": {"Type": "noop"}, "Timeouts": {"QueueTimeout": 60}}
            ],
        }
    )


@pytest.fixture
async def manual(tmp_path: Path) -> AsyncIterator[tuple[Orchestrator, RecordingCompute]]:
    compute = RecordingCompute()
    orch = Orchestrator(
        node_info=NodeInfo(node_id=REQUESTER, node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        settings=SchedulerSettings(queue_backoff=0.05),
        manual_approval=True,
    )
    async with orch:
        yield orch, compute


def _membership(orch: Orchestrator, node_id: str) -> Membership:
    return orch.nodes.get(node_id).membership


async def _state(orch: Orchestrator, job_id: str, wanted: JobStateType) -> None:
    for _ in range(200):
        if (await orch.get_job(job_id)).state == wanted:
            return
        await orch.wait_for_change(job_id, after_seq=orch.store.last_seq(job_id), timeout=0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}")


async def test_a_pending_node_is_not_asked_until_approved(
    manual: tuple[Orchestrator, RecordingCompute],
) -> None:
    orch, compute = manual
    response = await orch.join(_compute_node("node-pending"))
    assert response.accepted
    assert _membership(orch, "node-pending") == Membership.PENDING
    job_id = (await orch.submit_job(_queued_job())).job_id
    await _state(orch, job_id, JobStateType.QUEUED)
    job = await orch.get_job(job_id)
    assert "node node-pending is pending" in job.state_message
    assert compute.sent == []

    assert await orch.update_node("node-pend", "approve", "checked by hand") == (True, "")
    assert _membership(orch, "node-pending") == Membership.APPROVED
    node, ask = await compute.next("ask")
    assert node == "node-pending"
    assert isinstance(ask, AskForBidRequest) and ask.execution.job_id == job_id


async def test_rejecting_a_node_stops_new_placements_and_its_waiting_bids(
    manual: tuple[Orchestrator, RecordingCompute],
) -> None:
    orch, compute = manual
    await orch.join(_compute_node("node-a"))
    assert await orch.update_node("node-a", "approve") == (True, "")
    job_id = (await orch.submit_job(_queued_job())).job_id
    _, ask = await compute.next("ask")
    assert isinstance(ask, AskForBidRequest)
    # The operator rejects the node while its bid is on the way: the bid is turned away.
    assert await orch.update_node("node-a", "reject") == (True, "")
    await orch.on_bid_complete(BidResult(ask.execution.id, job_id, "node-a", accepted=True))
    node, decision = await compute.next("reject")
    assert node == "node-a" and isinstance(decision, BidDecision) and not decision.accepted
    await _state(orch, job_id, JobStateType.QUEUED)
    assert [kind for kind, _, _ in compute.sent if kind in ("ask", "accept")] == []
    # A rejected node cannot come back by joining again.
    again = await orch.join(_compute_node("node-a"))
    assert not again.accepted and "rejected" in again.reason


async def test_deleted_nodes_join_afresh_and_operator_mistakes_are_reported(
    manual: tuple[Orchestrator, RecordingCompute],
) -> None:
    orch, _ = manual
    await orch.join(_compute_node("node-a"))
    await orch.update_node("node-a", "approve")
    assert await orch.update_node("node-a", "delete") == (True, "")
    assert "node-a" not in {n.info.node_id for n in await orch.list_nodes()}
    await orch.join(_compute_node("node-a"))
    assert _membership(orch, "node-a") == Membership.PENDING
    ok, error = await orch.update_node("node-unknown", "approve")
    assert not ok and "node not found" in error
    assert await orch.update_node("node-a", "promote") == (False, "unsupported action")
    ok, error = await orch.update_node(REQUESTER, "reject")
    assert not ok and "this requester" in error


class _AddressBook:
    def register_node(self, node_id: str, address: str) -> None:
        pass


async def test_a_hybrid_nodes_own_compute_role_is_approved() -> None:
    nodes = NodeManager(
        self_info=NodeInfo(node_id="hybrid", node_type=NodeType.REQUESTER),
        address_book=_AddressBook(),
        manual_approval=True,
    )
    await nodes.join(_compute_node("hybrid"))
    await nodes.join(_compute_node("other"))
    states = {n.info.node_id: n.membership for n in nodes.compute_nodes()}
    assert states == {"hybrid": Membership.APPROVED, "other": Membership.PENDING}
    # A prefix of the hybrid's ID names one node, not two.
    assert nodes.get("hyb").info.node_id == "hybrid"


async def test_without_manual_approval_nodes_are_approved_on_joining(tmp_path: Path) -> None:
    compute = RecordingCompute()
    orch = Orchestrator(
        node_info=NodeInfo(node_id=REQUESTER, node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
    )
    async with orch:
        await orch.join(_compute_node("node-a"))
        assert _membership(orch, "node-a") == Membership.APPROVED
