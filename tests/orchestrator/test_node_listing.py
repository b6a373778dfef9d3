"""Scheduling passes that place nothing look at their executions' nodes alone: the pass that
completes a job, approves a bid or fails an execution on a lost node never lists the
cluster; a placement does. Pure scheduler calls with a real :class:`NodeListing`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bacalhau.models import Connection, Membership, NodeReputation, NodeState, Resources
from bacalhau.orchestrator import SchedulerSettings, schedule
from bacalhau.orchestrator._node_listing import NodeListing
from tests.orchestrator.test_fast_path import requester_with_one_node
from tests.orchestrator.test_scheduler import NOW, D, E, ev, execution, job, node


class _Cluster:
    """Nodes behind a listing that counts what was built."""

    def __init__(self, nodes: Sequence[NodeState]) -> None:
        self.nodes = {n.info.node_id: n for n in nodes}
        self.listed = 0
        self.looked_up: list[str] = []

    def listing(self) -> NodeListing:
        def everything() -> list[NodeState]:
            self.listed += 1
            return list(self.nodes.values())

        def one(node_id: str) -> NodeState | None:
            self.looked_up.append(node_id)
            return self.nodes.get(node_id)

        return NodeListing(everything, one)


def _cluster(size: int = 50) -> _Cluster:
    return _Cluster([node(f"n{i}") for i in range(size)])


def test_completing_a_job_looks_only_at_its_executions_node() -> None:
    cluster = _cluster()
    done = execution("e1", "n7", E.COMPLETED, D.RUNNING)
    plan = schedule(job(), [done], cluster.listing(), ev(), now=NOW)
    assert plan.new_job_state is not None and plan.new_job_state.name == "COMPLETED"
    assert cluster.listed == 0
    assert cluster.looked_up == ["n7"]


def test_approving_a_bid_reads_the_bidders_membership_alone() -> None:
    cluster = _cluster()
    bid = execution("e1", "n3", E.ASK_FOR_BID_ACCEPTED, D.PENDING)
    plan = schedule(
        job(),
        [bid],
        cluster.listing(),
        ev(),
        now=NOW,
        settings=SchedulerSettings(pre_approve=False),
    )
    assert [(c.execution_id, c.desired_state) for c in plan.changes] == [("e1", D.RUNNING)]
    assert cluster.listed == 0

    cluster.nodes["n3"].membership = Membership.REJECTED
    plan = schedule(job(), [bid], cluster.listing(), ev(), now=NOW)
    assert [c.desired_message for c in plan.changes] == ["bid rejected: the node is not approved"]
    # Its partition is placed again, elsewhere: that placement lists the nodes.
    assert cluster.listed == 1
    assert [e.node_id for e in plan.new_executions] != ["n3"]


def test_a_lost_node_is_found_without_the_list_and_its_partition_placed_with_it() -> None:
    cluster = _cluster(3)
    cluster.nodes["n1"].connection = Connection.DISCONNECTED
    running = execution("e1", "n1", E.BID_ACCEPTED, D.RUNNING)
    plan = schedule(job(), [running], cluster.listing(), ev(), now=NOW)
    assert plan.changes[0].compute_state == E.FAILED
    # The partition goes elsewhere: that placement listed the nodes, once.
    assert cluster.listed == 1
    assert [e.node_id for e in plan.new_executions] in (["n0"], ["n2"])


def test_a_placement_lists_the_nodes_once_and_lookups_then_agree_with_the_list() -> None:
    cluster = _cluster(4)
    listing = cluster.listing()
    plan = schedule(job(count=2), [], listing, ev(), now=NOW)
    assert len(plan.new_executions) == 2
    assert cluster.listed == 1
    assert listing.get("n2") is cluster.nodes["n2"]
    assert listing.get("nobody") is None
    assert cluster.looked_up == []  # the list answers once it is built


@pytest.mark.parametrize("size", [0, 1, 3])
def test_a_listing_is_a_sequence_of_its_nodes(size: int) -> None:
    cluster = _cluster(size)
    listing = cluster.listing()
    assert len(listing) == size
    assert list(listing) == list(cluster.nodes.values())
    assert list(listing[:2]) == list(cluster.nodes.values())[:2]
    assert cluster.listed == 1


async def test_a_requesters_node_looked_up_alone_is_the_node_its_listing_holds(
    tmp_path: Path,
) -> None:
    """The requester builds a node looked up before any listing from that node's own records
    (what it placed there, its reputation): the same state the whole listing gives it."""
    async with AsyncExitStack() as stack:
        orch, _ = await requester_with_one_node(stack, tmp_path)
        placed = execution("e1", "node-a", E.NEW, D.RUNNING)
        placed.allocated = Resources(cpu=0.5, memory=1 << 20)
        orch.store.create_execution(placed)
        orch.store.record_verdicts({"node-a": True})
        looked_up = orch._ranked_nodes().get("node-a")
        listed = {n.info.node_id: n for n in orch._ranked_nodes()}
        assert looked_up is not None and looked_up == listed["node-a"]
        assert looked_up.reputation == NodeReputation(agreements=1)
        assert looked_up.info.compute is not None
        assert looked_up.info.compute.running_executions == 1  # what it placed counts
        assert orch._ranked_nodes().get("nobody") is None
