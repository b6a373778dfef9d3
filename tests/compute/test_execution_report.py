"""What a re-joining compute node announces to its requester: the executions it still holds
(under way, or finished with the report not yet delivered), carried on every join and on the
wire, so a restarted requester can reconcile."""

from __future__ import annotations

from pathlib import Path

from bacalhau._proto.v1 import node_pb2
from bacalhau.compute import ExecutionStore, HeartbeatLoop
from bacalhau.models import (
    ComputeFailure,
    Event,
    JoinRequest,
    LocalExecutionState,
    NodeInfo,
    NodeType,
)
from bacalhau.transport import _convert_messages as convert
from tests.compute.jobs import make_execution
from tests.compute.test_heartbeat import Registry, describe_node
from tests.compute.waiting import eventually

L = LocalExecutionState


def test_unsettled_executions_are_those_under_way_or_not_yet_reported(tmp_path: Path) -> None:
    with ExecutionStore(tmp_path / "c.db") as store:
        bidding = store.create(make_execution(), requester_id="r")
        running = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        running = store.transition(running, L.RUNNING)
        rejected = store.create(make_execution(), requester_id="r", state=L.BID_REJECTED)
        other = store.create(make_execution(), requester_id="r2", state=L.BID_ACCEPTED)
        # Finished, but its failure report is still waiting in the outbox.
        failed = store.create(make_execution(), requester_id="r", state=L.BID_ACCEPTED)
        failure = ComputeFailure(failed.id, failed.job_id, "n", Event(message="boom"))
        store.transition(failed, L.FAILED, callback=failure)
        assert set(store.unsettled_ids("r")) == {bidding.id, running.id, failed.id}
        assert set(store.unsettled_ids()) == {bidding.id, running.id, failed.id, other.id}
        # Once reported, a finished execution is settled.
        [entry] = store.pending_callbacks("r")
        store.delete_callback(entry.seq)
        assert set(store.unsettled_ids("r")) == {bidding.id, running.id}
        assert rejected.id not in store.unsettled_ids()


async def test_every_join_carries_the_executions_held_now() -> None:
    registry = Registry()
    held = ["e-1"]
    async with HeartbeatLoop(
        registry=registry, describe=describe_node(), executions=lambda: list(held), rejoin_after=1
    ):
        await eventually(lambda: len(registry.joins) == 1)
        assert registry.joins[0].executions == ["e-1"]
        # The requester restarts and forgets the node: the next join says what is held then.
        held.append("e-2")
        registry.known.clear()
        await eventually(lambda: len(registry.joins) == 2)
        assert registry.joins[1].executions == ["e-1", "e-2"]


def test_the_report_survives_the_wire_and_an_empty_one_is_not_absent() -> None:
    info = NodeInfo(node_id="n", node_type=NodeType.COMPUTE)
    for executions in (["a", "b"], [], None):
        msg = convert.registration_to_proto(
            JoinRequest(info=info, executions=executions), nonce=b"n" * 16
        )
        decoded = convert.registration_from_proto(
            node_pb2.NodeRegistration.FromString(msg.SerializeToString())
        )
        assert decoded.executions == executions
