"""Manual node approval: PENDING and REJECTED nodes are never asked to bid; approving a node
makes queued jobs placeable on it; rejecting one stops new placements, bids awaiting
approval included; decisions survive a requester restart. Liveness: a suspect node ranks
below healthy ones, a dead or departed one gets no work until it is back. Driven through a
real Orchestrator whose compute transport records what it is asked to send
(tests/orchestrator/test_callbacks.py) and whose cluster view the test changes by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bacalhau.models import (
    AskForBidRequest,
    BidDecision,
    BidResult,
    Connection,
    Job,
    JobStateType,
    LivenessState,
    Membership,
    NodeInfo,
    NodeType,
)
from bacalhau.orchestrator import Orchestrator, SchedulerSettings
from tests.orchestrator.node_view import StaticNodeView
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


def _requester(
    tmp_path: Path, compute: RecordingCompute, view: StaticNodeView, *, manual: bool = True
) -> Orchestrator:
    return Orchestrator(
        node_info=NodeInfo(node_id=REQUESTER, node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        # Two rounds: these tests turn away bids that wait for the requester's word.
        settings=SchedulerSettings(queue_backoff=0.05, pre_approve=False),
        manual_approval=manual,
    )


@pytest.fixture
async def manual(
    tmp_path: Path,
) -> AsyncIterator[tuple[Orchestrator, RecordingCompute, StaticNodeView]]:
    compute = RecordingCompute()
    view = StaticNodeView()
    async with _requester(tmp_path, compute, view) as orch:
        yield orch, compute, view


def _membership(orch: Orchestrator, node_id: str) -> Membership:
    return orch.nodes.get(node_id).membership


async def _state(orch: Orchestrator, job_id: str, wanted: JobStateType) -> None:
    for _ in range(200):
        if (await orch.get_job(job_id)).state == wanted:
            return
        await orch.wait_for_change(job_id, after_seq=orch.store.last_seq(job_id), timeout=0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}")


async def test_a_pending_node_is_not_asked_until_approved(
    manual: tuple[Orchestrator, RecordingCompute, StaticNodeView],
) -> None:
    orch, compute, view = manual
    await view.join(_compute_node("node-pending"))
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
    manual: tuple[Orchestrator, RecordingCompute, StaticNodeView],
) -> None:
    orch, compute, view = manual
    await view.join(_compute_node("node-a"))
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
    # A rejected node stays rejected whatever it publishes.
    await view.join(_compute_node("node-a"))
    assert _membership(orch, "node-a") == Membership.REJECTED


async def test_deleting_a_node_forgets_the_decision_and_mistakes_are_reported(
    manual: tuple[Orchestrator, RecordingCompute, StaticNodeView],
) -> None:
    orch, _, view = manual
    await view.join(_compute_node("node-a"))
    await orch.update_node("node-a", "approve")
    assert await orch.update_node("node-a", "delete") == (True, "")
    # Still a member of the cluster, but PENDING again under manual approval.
    assert _membership(orch, "node-a") == Membership.PENDING
    ok, error = await orch.update_node("node-unknown", "approve")
    assert not ok and "node not found" in error
    assert await orch.update_node("node-a", "promote") == (False, "unsupported action")
    ok, error = await orch.update_node(REQUESTER, "reject")
    assert not ok and "this requester" in error
    # A decision made twice is refused in Bacalhau's words, and changes nothing.
    assert await orch.update_node("node-a", "approve") == (True, "")
    assert await orch.update_node("node-a", "approve") == (False, "node node-a already approved")
    assert await orch.update_node("node-a", "reject") == (True, "")
    assert await orch.update_node("node-a", "reject") == (False, "node node-a already rejected")
    assert _membership(orch, "node-a") == Membership.REJECTED


async def test_decisions_survive_a_requester_restart(tmp_path: Path) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    async with _requester(tmp_path, compute, view) as orch:
        for node_id in ("node-a", "node-b", "node-c"):
            await view.join(_compute_node(node_id))
        await orch.update_node("node-a", "approve")
        await orch.update_node("node-b", "reject", "bad disk")
    # A new process: the same data directory, a cluster view that starts empty.
    view = StaticNodeView()
    async with _requester(tmp_path, compute, view) as orch:
        for node_id in ("node-a", "node-b", "node-c"):
            await view.join(_compute_node(node_id))
        assert _membership(orch, "node-a") == Membership.APPROVED
        assert _membership(orch, "node-b") == Membership.REJECTED
        assert _membership(orch, "node-c") == Membership.PENDING
        # What the operator said comes with the decision, as `node describe` shows it.
        rejected = orch.nodes.get("node-b")
        assert rejected is not None and rejected.membership_message == "bad disk"
        assert rejected.to_dict()["MembershipMessage"] == "bad disk"


async def test_turning_manual_approval_on_leaves_the_nodes_already_in_approved(
    tmp_path: Path,
) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    async with _requester(tmp_path, compute, view, manual=False) as orch:
        for node_id in ("node-a", "node-b"):
            await view.join(_compute_node(node_id))
        assert _membership(orch, "node-a") == Membership.APPROVED
    # The operator restarts the requester with manual approval on.
    view = StaticNodeView()
    async with _requester(tmp_path, compute, view, manual=True) as orch:
        for node_id in ("node-a", "node-b", "node-new"):
            await view.join(_compute_node(node_id))
        assert _membership(orch, "node-a") == Membership.APPROVED
        assert _membership(orch, "node-b") == Membership.APPROVED
        assert _membership(orch, "node-new") == Membership.PENDING


async def test_a_node_is_found_by_its_name_too(
    manual: tuple[Orchestrator, RecordingCompute, StaticNodeView],
) -> None:
    orch, _, view = manual
    named = _compute_node("12D3KooWnamed")
    named.labels["name"] = "c1"
    await view.join(named)
    assert (await orch.get_node("c1")).info.node_id == "12D3KooWnamed"
    assert await orch.update_node("c1", "approve") == (True, "")
    assert _membership(orch, "12D3KooWnamed") == Membership.APPROVED


async def test_a_hybrid_nodes_own_compute_role_is_approved(tmp_path: Path) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    orch = Orchestrator(
        node_info=NodeInfo(node_id="hybrid", node_type=NodeType.REQUESTER),
        data_dir=tmp_path,
        compute=compute,
        node_view=view,
        manual_approval=True,
    )
    async with orch:
        await view.join(_compute_node("hybrid"))
        await view.join(_compute_node("other"))
        states = {n.info.node_id: n.membership for n in orch.nodes.compute_nodes()}
        assert states == {"hybrid": Membership.APPROVED, "other": Membership.PENDING}
        # A prefix of the hybrid's ID names one node, not two.
        assert orch.nodes.get("hyb").info.node_id == "hybrid"


async def test_without_manual_approval_nodes_are_approved_on_joining(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _requester(tmp_path, RecordingCompute(), view, manual=False) as orch:
        await view.join(_compute_node("node-a"))
        assert _membership(orch, "node-a") == Membership.APPROVED


async def test_liveness_decides_who_is_asked(tmp_path: Path) -> None:
    compute = RecordingCompute()
    view = StaticNodeView()
    async with _requester(tmp_path, compute, view, manual=False) as orch:
        await view.join(_compute_node("node-a"))
        await view.join(_compute_node("node-b"))
        # A suspect is usable but ranks below a healthy node.
        await view.suspect("node-a")
        state = orch.nodes.get("node-a")
        assert state.connection == Connection.CONNECTED
        assert state.liveness == LivenessState.SUSPECT
        for _ in range(3):
            job_id = (await orch.submit_job(_queued_job())).job_id
            node, _ = await compute.next("ask")
            assert node == "node-b", job_id
        # Dead, or gone on purpose: disconnected, asked for nothing.
        await view.kill("node-b")
        await view.leave("node-a")
        for node_id in ("node-a", "node-b"):
            assert orch.nodes.get(node_id).connection == Connection.DISCONNECTED
        job_id = (await orch.submit_job(_queued_job())).job_id
        await _state(orch, job_id, JobStateType.QUEUED)
        assert not [kind for kind, _, _ in compute.sent if kind == "ask"]
        # Back with a newer record: usable again, and the waiting job goes there.
        await view.come_back("node-b")
        assert orch.nodes.get("node-b").connection == Connection.CONNECTED
        node, _ = await compute.next("ask")
        assert node == "node-b"
