"""What an execution that ended frees on its node counts until a record that shows the end
arrives: a record published before the end, arriving after it (gossip is slower than the
answer that told of the end), does not undo it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from bacalhau.models import NodeInfo, NodeType, Resources
from bacalhau.orchestrator._approvals import ApprovalStore
from bacalhau.orchestrator._nodes import NodeDirectory
from bacalhau.orchestrator._view import NodeSighting
from tests.orchestrator.node_view import StaticNodeView, compute_node_info


class _Book:
    def register_node(self, node_id: str, address: str) -> None:
        pass


async def _directory(tmp_path: Path, view: StaticNodeView, lag: float) -> NodeDirectory:
    return await NodeDirectory(
        self_info=NodeInfo(node_id="requester", node_type=NodeType.REQUESTER),
        view=view,
        approvals=ApprovalStore(tmp_path / "nodes.db"),
        address_book=_Book(),
        record_lag=lag,
    ).__aenter__()


async def _busy_node(view: StaticNodeView, *, cpu: int, free: int, running: int) -> NodeSighting:
    """Node ``n1`` in ``view``, ``running`` executions in its record; its sighting."""
    await view.join(compute_node_info("n1", cpu=cpu, free=free))
    seen = view.get("n1")
    assert seen is not None and seen.info.compute is not None
    await view.join(
        replace(seen.info, compute=replace(seen.info.compute, running_executions=running))
    )
    busy = view.get("n1")
    assert busy is not None
    return busy


def _seen(directory: NodeDirectory) -> tuple[float, int]:
    (node,) = directory.compute_nodes()
    assert node.info.compute is not None
    return node.info.compute.available_capacity.cpu, node.info.compute.running_executions


async def test_a_record_older_than_the_end_does_not_undo_it(tmp_path: Path) -> None:
    view = StaticNodeView()
    await _busy_node(view, cpu=4, free=3, running=1)
    directory = await _directory(tmp_path, view, lag=0.3)
    assert _seen(directory) == (3, 1)

    directory.release("n1", Resources(cpu=1))
    assert _seen(directory) == (4, 0)  # free at once, one fewer running

    # A record published while the execution ran arrives after the end: still free.
    await view.publish_capacity("n1", available=Resources(cpu=3))
    assert _seen(directory) == (4, 0)

    # Past the lag, the latest record speaks for the node again.
    await asyncio.sleep(0.35)
    assert _seen(directory) == (3, 1)

    # Ends learned of while a record is the latest last as long as it does.
    directory.release("n1", Resources(cpu=1))
    await asyncio.sleep(0.35)
    assert _seen(directory) == (4, 0)
    await view.publish_capacity("n1", available=Resources(cpu=4))
    await asyncio.sleep(0.35)
    (node,) = directory.compute_nodes()
    assert node.info.compute is not None
    assert node.info.compute.available_capacity.cpu == 4


async def test_a_node_that_says_its_record_version_at_the_end_is_read_exactly(
    tmp_path: Path,
) -> None:
    # No lag at all: only the stamp decides which records still count the execution.
    view = StaticNodeView()
    at_end = await _busy_node(view, cpu=4, free=3, running=1)
    directory = await _directory(tmp_path, view, lag=0.0)

    # The answer outran a record published while the execution ran: that record (one
    # version newer than the requester held, not newer than the node's at the end) arrives.
    directory.release("n1", Resources(cpu=1), record_version=at_end.version + 1)
    await view.publish_capacity("n1", available=Resources(cpu=3))
    assert _seen(directory) == (4, 0)

    # A record newer than the node's at the end speaks for the node again, as it is.
    await view.publish_capacity("n1", available=Resources(cpu=4))
    (node,) = directory.compute_nodes()
    assert node.info.compute is not None
    assert (node.info.compute.available_capacity.cpu, node.info.compute.running_executions) == (
        4,
        1,
    )


async def test_ends_stamped_with_the_same_version_are_kept_as_one(tmp_path: Path) -> None:
    # A node that looks the same at every refresh publishes no newer record: its ends all
    # carry one version, and are kept as one entry that counts them all (not a growing list
    # every node listing sums).
    view = StaticNodeView()
    stamp = await _busy_node(view, cpu=8, free=2, running=5)
    directory = await _directory(tmp_path, view, lag=0.0)
    for _ in range(3):
        directory.release("n1", Resources(cpu=1), record_version=stamp.version)
    assert _seen(directory) == (5, 2)
    for _ in range(500):
        directory.release("n1", Resources(cpu=1), record_version=stamp.version)
    assert _seen(directory) == (8, 0)  # capped at the total, not below none
    assert len(directory._released["n1"]) == 1
    # An end stamped later is its own entry; a newer record than both ends them.
    directory.release("n1", Resources(cpu=1), record_version=stamp.version + 1)
    assert len(directory._released["n1"]) == 2
    await view.publish_capacity("n1", available=Resources(cpu=2))
    await view.publish_capacity("n1", available=Resources(cpu=2))
    assert _seen(directory) == (2, 5)


class _CountingView(StaticNodeView):
    """The static view, counting how often the directory lists it."""

    def __init__(self) -> None:
        super().__init__()
        self.listed = 0

    def compute_nodes(self) -> list[NodeSighting]:
        self.listed += 1
        return super().compute_nodes()


async def test_the_nodes_are_listed_once_per_turn_and_again_after_a_change(
    tmp_path: Path,
) -> None:
    view = _CountingView()
    await _busy_node(view, cpu=4, free=3, running=1)
    directory = await _directory(tmp_path, view, lag=0.0)
    view.listed = 0
    # One turn: the passes it makes share one listing.
    assert _seen(directory) == _seen(directory) == (3, 1)
    assert view.listed == 1
    # An end (or any change of the directory's own) is seen at once, in the same turn.
    directory.release("n1", Resources(cpu=1), record_version=10**6)
    assert _seen(directory) == (4, 0)
    assert view.listed == 2
    # A record the view learns of arrives in a turn of its own, and is read then.
    view._nodes["n1"] = replace(view._nodes["n1"], version=10**6 + 1)
    await asyncio.sleep(0)
    assert _seen(directory) == (3, 1)
    assert view.listed == 3


async def test_an_end_frees_the_queue_before_the_free_room(tmp_path: Path) -> None:
    # The last record showed the node full with 2 CPUs of work queued. Ends free the queue
    # first (queued work takes the room); only then is room free. The queue a late record
    # shows must not keep the node full after its work ended: that once sent every job to
    # the other node while this one sat idle.
    view = StaticNodeView()
    seen = await _busy_node(view, cpu=4, free=0, running=4)
    assert seen.info.compute is not None
    queued = replace(seen.info.compute, queue_capacity=Resources(cpu=2), enqueued_executions=2)
    await view.join(replace(seen.info, compute=queued))
    directory = await _directory(tmp_path, view, lag=0.3)

    def queue_and_free() -> tuple[float, float]:
        (node,) = directory.compute_nodes()
        assert node.info.compute is not None
        return node.info.compute.queue_capacity.cpu, node.info.compute.available_capacity.cpu

    assert queue_and_free() == (2, 0)
    directory.release("n1", Resources(cpu=1))
    assert queue_and_free() == (1, 0)  # a queued execution took the room
    directory.release("n1", Resources(cpu=1.5))
    assert queue_and_free() == (0, 0.5)
    directory.release("n1", Resources(cpu=8))
    assert queue_and_free() == (0, 4)  # never beyond the node's total
