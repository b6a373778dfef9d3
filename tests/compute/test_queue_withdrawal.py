"""What waits in a compute node's run queue: the node lists it per requester, tells the
requester once an execution has waited a while, and hands back (withdraws) an execution
only while it still waits, so the requester can run it on a node with room."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bacalhau.compute import CapacityTracker
from bacalhau.compute._queue import RunQueue
from bacalhau.compute._queue_watch import QueueWatch
from bacalhau.errors import PermissionDenied
from bacalhau.models import (
    BidResult,
    CancelExecutionRequest,
    ComputeFailure,
    LocalExecutionState,
    Resources,
    RunResult,
)
from tests.compute.jobs import make_execution
from tests.compute.test_endpoint import OTHER_REQUESTER, REQUESTER, NodeFactory, compute_node
from tests.compute.waiting import eventually

__all__ = ["compute_node"]

L = LocalExecutionState
ONE_CPU = Resources(cpu=1, memory=2**30)


async def test_the_queue_says_how_long_each_execution_has_waited() -> None:
    started: list[str] = []
    queue = RunQueue(CapacityTracker(ONE_CPU), started.append)
    queue.submit("runs", Resources(cpu=1))
    queue.submit("waits", Resources(cpu=1))
    await asyncio.sleep(0.05)
    [(execution_id, waited)] = queue.waiting()
    assert execution_id == "waits" and 0.05 <= waited < 5
    assert started == ["runs"]


async def test_a_requester_is_told_once_when_its_execution_has_waited_long() -> None:
    queue = RunQueue(CapacityTracker(ONE_CPU), lambda _: None)
    requester_of = {"runs": "r1", "a": "r1", "b": "r2", "c": "r1"}
    watch = QueueWatch(queue, requester_of, report_after=0.05)
    told: list[str] = []
    watch.listen(told.append)
    for execution_id in ("runs", "a", "b"):
        queue.submit(execution_id, Resources(cpu=1))
    # Waited less than report_after: a burst of work says nothing.
    assert watch.check() == set() and told == []
    await asyncio.sleep(0.06)
    assert watch.check() == {"r1", "r2"}
    assert told == ["r1", "r2"]
    # Told once per execution: no report storm while it keeps waiting...
    assert watch.check() == set()
    # ...but a newcomer that waits long is told too.
    queue.submit("c", Resources(cpu=1))
    await asyncio.sleep(0.06)
    assert watch.check() == {"r1"}
    assert [q.execution_id for q in watch.queued_for("r1")] == ["a", "c"]
    assert [q.execution_id for q in watch.queued_for("r2")] == ["b"]
    assert all(q.waited >= 0.05 for q in watch.queued_for("r1"))
    # One its requester heard of that leaves the queue to run: the requester hears that too.
    queue.remove("a")
    assert watch.check() == {"r1"}
    # A withdrawn one (no longer this node's) is not reported.
    del requester_of["b"]
    queue.remove("b")
    assert watch.check() == set()
    # One that comes back (a restart) is told again.
    queue.submit("a", Resources(cpu=1))
    await asyncio.sleep(0.06)
    assert watch.check() == {"r1"}


async def test_a_waiting_execution_is_withdrawn_and_a_started_one_is_not(
    compute_node: NodeFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with compute_node(capacity=ONE_CPU) as node:
        blocker = make_execution(f"while [ ! -e {gate} ]; do sleep 0.01; done", cpu="1")
        waiting = make_execution("echo elsewhere", cpu="1")
        await node.ask(blocker, wait=False)
        await node.ask(waiting, wait=False)
        await eventually(lambda: node.endpoint.queued_count == 1)
        [queued] = node.endpoint.queue_watch.queued_for(REQUESTER)
        assert queued.execution_id == waiting.id

        # Only its own requester may take it back.
        with pytest.raises(PermissionDenied):
            await node.endpoint.withdraw_queued(OTHER_REQUESTER, CancelExecutionRequest(waiting.id))
        assert node.endpoint.queued_count == 1

        moved = CancelExecutionRequest(waiting.id, "moved to node b: it has room")
        assert await node.endpoint.withdraw_queued(REQUESTER, moved) is None
        assert node.endpoint.queued_count == 0
        record = node.store.get(waiting.id)
        assert record.state is L.CANCELLED
        assert record.message == "moved to node b: it has room"
        # Again: no longer waiting, so nothing changes (the answer says where it is).
        assert await node.endpoint.withdraw_queued(REQUESTER, moved) == "Cancelled"
        # The running one stays: it is not this node's to give up.
        running = await node.endpoint.withdraw_queued(REQUESTER, CancelExecutionRequest(blocker.id))
        assert running == L.RUNNING.value
        assert await node.endpoint.withdraw_queued(REQUESTER, CancelExecutionRequest("e-x")) == ""

        gate.touch()
        await node.callbacks.wait_for(blocker.id, RunResult)
        assert node.shell.started == [blocker.id]
        # The requester withdrew it: the node says nothing more of it (its bid answer only).
        said = node.callbacks.messages(waiting.id)
        assert [type(m) for m in said] == [BidResult]
        assert not any(isinstance(m, (RunResult, ComputeFailure)) for m in said)
