"""Compute nodes a requester knew are listed after its restart, as Bacalhau keeps its nodes:
one down while the requester restarted (or that gossip forgot) is listed disconnected, as last
known, until an operator deletes it; one re-learned as dead keeps when it was last alive. The
scheduler reads the cluster view alone: a node known only from before is never asked."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from bacalhau.errors import InvalidRequest
from bacalhau.models import Connection, LivenessState, Membership, NodeInfo, NodeType
from bacalhau.orchestrator import NodeChangeKind, NodeSighting, Orchestrator
from tests.orchestrator.node_view import StaticNodeView, compute_node_info
from tests.orchestrator.test_job_names import UnansweredAsks

REQUESTER = NodeInfo(node_id="requester", node_type=NodeType.REQUESTER)
S = 1_000_000_000


def _orchestrator(tmp_path: Path, view: StaticNodeView) -> Orchestrator:
    return Orchestrator(
        node_info=REQUESTER, data_dir=tmp_path, compute=UnansweredAsks(), node_view=view
    )


async def test_nodes_down_or_up_at_a_restart_are_listed_until_deleted(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(compute_node_info("node-dead", labels={"zone": "a"}))
        await view.join(compute_node_info("node-up"))
        await view.kill("node-dead", silent_for=60)
        died = time.time_ns() - 60 * S
        stopped = time.time_ns()

    async with _orchestrator(tmp_path, StaticNodeView()) as orch:
        listed = {n.info.node_id: n for n in await orch.list_nodes()}
        assert set(listed) == {"requester", "node-dead", "node-up"}
        dead = listed["node-dead"]
        assert (dead.connection, dead.liveness) == (Connection.DISCONNECTED, LivenessState.DEAD)
        assert abs(dead.last_seen_ns - died) < 5 * S
        assert dead.info.labels == {"zone": "a"} and dead.membership == Membership.APPROVED
        up = listed["node-up"]
        assert up.connection == Connection.DISCONNECTED and up.last_seen_ns >= stopped
        assert up.liveness == LivenessState.SUSPECT  # not heard from since
        # Described by a prefix, as any node; but never asked for work.
        assert (await orch.get_node("node-d")).info.node_id == "node-dead"
        assert orch.nodes.compute_nodes() == []
        # An operator's delete forgets it.
        assert await orch.update_node("node-dead", "delete") == (True, "")
        assert "node-dead" not in {n.info.node_id for n in await orch.list_nodes()}

    async with _orchestrator(tmp_path, StaticNodeView()) as orch:
        assert {n.info.node_id for n in await orch.list_nodes()} == {"requester", "node-up"}


async def _died_two_minutes_before_a_restart(tmp_path: Path) -> NodeSighting:
    """Node ``node-a`` as a requester knew it when it stopped: dead, silent for 2 minutes."""
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view):
        await view.join(compute_node_info("node-a"))
        await view.kill("node-a", silent_for=120)
    gone = view.get("node-a")
    assert gone is not None
    return gone


async def test_a_node_relearned_as_dead_keeps_when_it_was_last_alive(tmp_path: Path) -> None:
    gone = await _died_two_minutes_before_a_restart(tmp_path)
    later = StaticNodeView()
    async with _orchestrator(tmp_path, later) as orch:
        # Another member tells the restarted requester of the dead node (its same record):
        # the view has only the time it heard of it.
        await later._tell(NodeChangeKind.DEAD, replace(gone, last_seen_ns=time.time_ns()), None)
        [node] = [n for n in await orch.list_nodes() if n.info.node_id == "node-a"]
        assert node.liveness == LivenessState.DEAD
        assert time.time_ns() - node.last_seen_ns > 100 * S
        # Back with a newer record: connected, listed once.
        later._version = gone.version  # the view's versions go on from the node's
        await later.come_back("node-a")
        nodes = [n for n in await orch.list_nodes() if n.info.node_id == "node-a"]
        assert [n.connection for n in nodes] == [Connection.CONNECTED]


async def test_a_name_two_nodes_share_is_refused_as_a_name(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(compute_node_info("node-1", labels={"name": "vm"}))
        await view.join(compute_node_info("node-2", labels={"name": "vm"}))
        with pytest.raises(InvalidRequest, match="node name vm matches 2 nodes"):
            await orch.get_node("vm")
        with pytest.raises(InvalidRequest, match="node ID prefix node- matches 2 nodes"):
            await orch.get_node("node-")


async def test_a_dead_node_first_relearned_as_alive_keeps_when_it_was_last_alive(
    tmp_path: Path,
) -> None:
    """Gossip may hand a restarted requester a dead node's last record as a fresh member,
    then find it dead: neither makes it look alive a moment ago."""
    gone = await _died_two_minutes_before_a_restart(tmp_path)
    later = StaticNodeView()
    async with _orchestrator(tmp_path, later) as orch:
        later._version = gone.version - 1  # its same record again
        await later.join(gone.info)
        await later.kill("node-a", silent_for=0)
        [node] = [n for n in await orch.list_nodes() if n.info.node_id == "node-a"]
        assert node.liveness == LivenessState.DEAD
        assert time.time_ns() - node.last_seen_ns > 100 * S


async def test_a_deleted_dead_node_is_not_listed_until_it_is_back(tmp_path: Path) -> None:
    view = StaticNodeView()
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(compute_node_info("node-a"))
        await view.kill("node-a")
        assert await orch.update_node("node-a", "delete") == (True, "")
        assert "node-a" not in {n.info.node_id for n in await orch.list_nodes()}
        await view.come_back("node-a")
        [back] = [n for n in await orch.list_nodes() if n.info.node_id == "node-a"]
        assert back.connection == Connection.CONNECTED


async def test_a_deletion_holds_across_a_restart_until_the_node_is_back(tmp_path: Path) -> None:
    """The members still hold a deleted node's last record and teach it to a restarted
    requester: that record does not list the node again; a newer one (it is back) does."""
    view = StaticNodeView()
    info = compute_node_info("node-a")
    async with _orchestrator(tmp_path, view) as orch:
        await view.join(info)
        await view.leave("node-a")
        last = view.get("node-a")
        assert last is not None
        assert await orch.update_node("node-a", "delete") == (True, "")
        assert "node-a" not in {n.info.node_id for n in await orch.list_nodes()}
    for _ in range(2):  # restarted (twice): the same last record, heard again
        again = StaticNodeView()
        async with _orchestrator(tmp_path, again) as orch:
            await again.learn_left(info, last.version)
            assert "node-a" not in {n.info.node_id for n in await orch.list_nodes()}
    third = StaticNodeView()
    async with _orchestrator(tmp_path, third) as orch:
        await third.learn_left(info, last.version)
        await third.come_back("node-a")
        [back] = [n for n in await orch.list_nodes() if n.info.node_id == "node-a"]
        assert back.connection == Connection.CONNECTED
    # Back, its deletion is over: a later restart lists it as last known.
    async with _orchestrator(tmp_path, StaticNodeView()) as orch:
        assert "node-a" in {n.info.node_id for n in await orch.list_nodes()}
